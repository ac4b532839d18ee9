import { join } from 'node:path'
import { z } from 'zod'
import { ApiError } from '../api/problem.js'
import { readIfExists, writePrivateFile } from '../config/paths.js'
import { ProviderDeviceSchema } from '../config/schema.js'
import { RpibError } from '../errors.js'

/** A device as the owner described it (the config file's `provider.devices[]` shape, defaults filled). */
export type DeviceSpec = z.output<typeof ProviderDeviceSchema>

/** A device this provider rents out, as the registry keeps it. */
export const RegisteredDeviceSchema = ProviderDeviceSchema.extend({
  /** listed in the market (false: unlisted; running leases go on, no new offers) */
  published: z.boolean(),
  /** ms since the epoch */
  createdAt: z.number().int().nonnegative(),
})
export type RegisteredDevice = z.output<typeof RegisteredDeviceSchema>

/** The market caps listings per provider at 16 by default; the registry keeps to the same bound. */
export const MAX_DEVICES = 16

const RegistryFileSchema = z.object({
  version: z.literal(1),
  devices: z.array(RegisteredDeviceSchema).max(MAX_DEVICES),
  /** config-file device ids already imported once, so removing one with the CLI sticks across restarts */
  seeded: z.array(z.string()).default([]),
})
type RegistryFile = z.output<typeof RegistryFileSchema>

export interface DeviceRegistry {
  /** `<home>/provider/devices.json` */
  readonly path: string
  list(): RegisteredDevice[]
  get(id: string): RegisteredDevice | undefined
  /** adds a device; 409 ERR_DEVICE_EXISTS if the id is taken */
  add(device: DeviceSpec, published: boolean): Promise<RegisteredDevice>
  setPublished(id: string, published: boolean): Promise<RegisteredDevice>
  remove(id: string): Promise<void>
}

export interface DeviceRegistryOptions {
  /** the provider's state directory (`<home>/provider`) */
  dir: string
  /** devices from the config file: imported (published) the first time they are seen */
  seed?: readonly DeviceSpec[]
  now?: () => number
}

export function unknownDevice(id: string): ApiError {
  return new ApiError(404, 'ERR_DEVICE_UNKNOWN', `no device ${id} on this provider; see \`rpib device list\``)
}

/**
 * The devices this node rents out, persisted as one JSON file (atomic writes, mode 0600). Every change
 * is written before it is reported, one change at a time.
 */
export async function openDeviceRegistry(opts: DeviceRegistryOptions): Promise<DeviceRegistry> {
  const path = join(opts.dir, 'devices.json')
  const now = opts.now ?? Date.now
  const loaded = await load(path)
  const file = loaded ?? { version: 1, devices: [], seeded: [] }
  const devices = new Map(file.devices.map((d) => [d.id, d]))
  const seeded = new Set(file.seeded)
  let writing: Promise<void> = Promise.resolve()

  const save = (): Promise<void> => {
    const data: RegistryFile = { version: 1, devices: [...devices.values()], seeded: [...seeded] }
    const next = writing.then(() => writePrivateFile(path, JSON.stringify(data, null, 1) + '\n'))
    writing = next.catch(() => undefined)
    return next
  }

  let changed = loaded === undefined
  for (const d of opts.seed ?? []) {
    if (seeded.has(d.id)) continue
    seeded.add(d.id)
    changed = true
    if (!devices.has(d.id) && devices.size < MAX_DEVICES)
      devices.set(d.id, { ...d, published: true, createdAt: now() })
  }
  if (changed) await save()

  const need = (id: string): RegisteredDevice => {
    const d = devices.get(id)
    if (d === undefined) throw unknownDevice(id)
    return d
  }

  return {
    path,
    list: () => [...devices.values()],
    get: (id) => devices.get(id),
    async add(device, published) {
      if (devices.has(device.id)) {
        throw new ApiError(
          409,
          'ERR_DEVICE_EXISTS',
          `a device with id ${device.id} exists already; pick another id or remove it first`,
        )
      }
      if (devices.size >= MAX_DEVICES) {
        throw new ApiError(
          409,
          'ERR_DEVICE_LIMIT',
          `this provider has ${MAX_DEVICES} devices, the most the market lists per provider; remove one first`,
        )
      }
      const registered: RegisteredDevice = { ...device, published, createdAt: now() }
      devices.set(device.id, registered)
      await save()
      return registered
    },
    async setPublished(id, published) {
      const updated = { ...need(id), published }
      devices.set(id, updated)
      await save()
      return updated
    },
    async remove(id) {
      need(id)
      devices.delete(id)
      await save()
    },
  }
}

async function load(path: string): Promise<RegistryFile | undefined> {
  const raw = await readIfExists(path)
  if (raw === undefined) return undefined
  let json: unknown
  try {
    json = JSON.parse(raw.toString('utf8'))
  } catch (err) {
    throw new RpibError('ERR_DEVICES_CORRUPT', `${path} is not JSON; restore it from a backup or remove it`, {
      cause: err,
    })
  }
  const parsed = RegistryFileSchema.safeParse(json)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    throw new RpibError(
      'ERR_DEVICES_CORRUPT',
      `${path} is invalid at ${issue?.path.join('.') ?? '?'}: ${issue?.message ?? 'unknown'}; fix or remove it`,
    )
  }
  return parsed.data
}
