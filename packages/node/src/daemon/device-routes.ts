/**
 * The owner's device API (`rpib device …` and the UI are clients of it): route descriptors and the
 * shapes they exchange. Served by the provider service (daemon/provider-service.ts).
 */
import { z } from 'zod'
import { ImageRefSchema, LIMITS } from '@rpib/protocol'
import { defineRoute } from '../api/contract.js'
import { ProviderDeviceSchema } from '../config/schema.js'

/** What `POST /api/devices` takes: a config-file device plus whether to list it at once. */
export const AddDeviceBodySchema = ProviderDeviceSchema.extend({
  satsPerHour: z.number().int().min(1).max(LIMITS.maxSats),
  minHours: z.number().int().min(1).max(LIMITS.maxHours).default(1),
  maxHours: z.number().int().min(1).max(LIMITS.maxHours).default(720),
  images: z.array(ImageRefSchema).min(1).max(LIMITS.maxImages).default(['rpib/base:bookworm']),
  /** false: register the device without listing it (`rpib device publish` lists it later) */
  publish: z.boolean().default(true),
}).refine((d) => d.minHours <= d.maxHours, {
  message: 'minHours must not exceed maxHours',
  path: ['minHours'],
})
export type AddDeviceBody = z.input<typeof AddDeviceBodySchema>

/** Whether this node can run leases at all (Docker reachable), and if not, why and what to do. */
export const HostingSchema = z.object({
  canHost: z.boolean(),
  reason: z.string().optional().describe('why this node cannot host leases'),
  hint: z.string().optional().describe('what to do about it'),
})
export type Hosting = z.infer<typeof HostingSchema>

const LimitsSchema = z.object({
  cpus: z.number().int(),
  memoryMb: z.number().int(),
  diskMb: z.number().int(),
  pidsLimit: z.number().int(),
})

export const DeviceViewSchema = z.object({
  id: z.string(),
  name: z.string(),
  description: z.string(),
  satsPerHour: z.number().int(),
  minHours: z.number().int(),
  maxHours: z.number().int(),
  slots: z.number().int(),
  images: z.array(z.string()),
  limits: LimitsSchema,
  published: z.boolean().describe('listed in the market (the owner’s choice)'),
  createdAt: z.number().int(),
  busySlots: z.number().int().describe('leases paid, being provisioned or active'),
  listing: z
    .object({ key: z.string(), version: z.number().int(), status: z.enum(['listed', 'unlisted']) })
    .nullable()
    .describe('the newest signed listing of this device in the market, if any'),
  problem: z.string().optional().describe('why a published device is not listed right now'),
})
export type DeviceView = z.infer<typeof DeviceViewSchema>

export const DeviceRentalSchema = z.object({
  offerId: z.string(),
  renter: z.string(),
  status: z.string(),
  priceSats: z.number().int(),
  paidSats: z.number().int(),
  expiresAt: z.number().int().optional(),
  endReason: z.string().optional(),
  refundedSats: z.number().int(),
})

export const DeviceDetailSchema = DeviceViewSchema.extend({
  signedListing: z.unknown().describe('the signed Listing record (null when never listed)'),
  rentals: z.array(DeviceRentalSchema),
})
export type DeviceDetail = z.infer<typeof DeviceDetailSchema>

export const EarningsSchema = z.object({
  deviceId: z.string(),
  leasesServed: z.number().int().describe('rentals that got a running lease'),
  paidSats: z.number().int().describe('received at the offers’ invoices (late payments included)'),
  refundedSats: z.number().int().describe('sent back to renters'),
  earnedSats: z.number().int().describe('paid − refunded'),
  pendingRefundSats: z.number().int().describe('refunds due but not sent yet'),
})
export type Earnings = z.infer<typeof EarningsSchema>

const DeviceIdParams = z.object({ id: z.string().min(1).max(64) })

export const listDevicesRoute = defineRoute({
  id: 'listDevices',
  method: 'GET',
  path: '/api/devices',
  tag: 'provider',
  auth: 'token',
  summary: 'This provider’s devices, whether this node can host leases (Docker), and their listings',
  response: HostingSchema.extend({ devices: z.array(DeviceViewSchema) }),
})

export const addDeviceRoute = defineRoute({
  id: 'addDevice',
  method: 'POST',
  path: '/api/devices',
  tag: 'provider',
  auth: 'token',
  summary: 'Register a device (checks its images exist here) and list it unless `publish: false`',
  body: AddDeviceBodySchema,
  response: DeviceDetailSchema,
  successStatus: 201,
})

export const showDeviceRoute = defineRoute({
  id: 'getDevice',
  method: 'GET',
  path: '/api/devices/:id',
  tag: 'provider',
  auth: 'token',
  summary: 'One device: its settings, signed listing, busy slots and rentals',
  params: DeviceIdParams,
  response: DeviceDetailSchema,
})

export const publishDeviceRoute = defineRoute({
  id: 'publishDevice',
  method: 'POST',
  path: '/api/devices/:id/publish',
  tag: 'provider',
  auth: 'token',
  summary: 'List a device in the market (signs a new listing version)',
  params: DeviceIdParams,
  response: DeviceDetailSchema,
})

export const unpublishDeviceRoute = defineRoute({
  id: 'unpublishDevice',
  method: 'POST',
  path: '/api/devices/:id/unpublish',
  tag: 'provider',
  auth: 'token',
  summary: 'Unlist a device: running leases go on, new rent requests are refused',
  params: DeviceIdParams,
  response: DeviceDetailSchema,
})

export const removeDeviceRoute = defineRoute({
  id: 'removeDevice',
  method: 'DELETE',
  path: '/api/devices/:id',
  tag: 'provider',
  auth: 'token',
  summary: 'Unlist and forget a device; 409 while a rental of it is in progress',
  params: DeviceIdParams,
  response: z.object({ removed: z.string() }),
})

export const deviceEarningsRoute = defineRoute({
  id: 'getDeviceEarnings',
  method: 'GET',
  path: '/api/devices/:id/earnings',
  tag: 'provider',
  auth: 'token',
  summary: 'What one device earned: leases served, sats paid, refunded, earned and refunds pending',
  params: DeviceIdParams,
  response: EarningsSchema,
})

export const earningsRoute = defineRoute({
  id: 'getEarnings',
  method: 'GET',
  path: '/api/earnings',
  tag: 'provider',
  auth: 'token',
  summary: 'Earnings per device (removed devices included) and their total',
  response: z.object({
    devices: z.array(EarningsSchema),
    total: EarningsSchema.omit({ deviceId: true }),
  }),
})
