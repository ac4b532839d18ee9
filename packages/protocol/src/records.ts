/**
 * Record bodies: strict zod schemas (unknown fields rejected), every string, array and integer bounded.
 * The envelope that carries and signs a body is in envelope.ts.
 */
import { z } from 'zod'
import { BITCOIN_NETWORKS, LIMITS, MAX_SATS } from './constants.js'
import type { BitcoinNetwork } from './constants.js'

// ---------- primitives ----------

/** Unix milliseconds. */
export const TimestampSchema = z.int().min(0).max(Number.MAX_SAFE_INTEGER)
/** Integer satoshis, 0 ≤ n ≤ 21e14. */
export const SatsSchema = z.int().min(0).max(MAX_SATS)

const boundedInt = (min: number, max: number) => z.int().min(min).max(max)

/** C0 controls (except tab/newline), DEL, and the bidi overrides that can disguise text in a terminal. */
function isUnsafeChar(code: number): boolean {
  return (
    (code < 0x20 && code !== 0x09 && code !== 0x0a) ||
    code === 0x7f ||
    (code >= 0x202a && code <= 0x202e) ||
    (code >= 0x2066 && code <= 0x2069)
  )
}
function hasUnsafeChar(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (isUnsafeChar(s.charCodeAt(i))) return true
  return false
}
/** Human-readable text shown to users: bounded, no control characters. */
export const textSchema = (max: number) =>
  z
    .string()
    .max(max)
    .refine((s) => !hasUnsafeChar(s), 'text must not contain control characters')
const singleLine = (max: number) =>
  textSchema(max).refine((s) => !s.includes('\n') && !s.includes('\t'), 'must be a single line')

/** Device slug: lower-case letters, digits and dashes, 1-64 chars, starting with a letter or digit. */
export const DeviceIdSchema = z
  .string()
  .max(LIMITS.maxDeviceIdLength)
  .regex(/^[a-z0-9][a-z0-9-]{0,63}$/, 'device id must match [a-z0-9][a-z0-9-]{0,63}')

/**
 * A libp2p peer id in its base58btc string form (e.g. 12D3KooW…). Only the format is checked here;
 * `verifyRecord` fully parses the signer's id.
 */
export const PeerIdStringSchema = z
  .string()
  .min(40)
  .max(128)
  .regex(/^[1-9A-HJ-NP-Za-km-z]+$/, 'peer id must be base58btc')

const LISTING_KEY_PATTERN = /^([1-9A-HJ-NP-Za-km-z]{40,128})\/([a-z0-9][a-z0-9-]{0,63})$/
/** `<providerPeerId>/<deviceId>`: the key of a listing in the listings store. */
export const ListingKeySchema = z
  .string()
  .max(200)
  .regex(LISTING_KEY_PATTERN, 'listing key must be <peerId>/<deviceId>')

export function listingKey(providerPeerId: string, deviceId: string): string {
  return `${providerPeerId}/${deviceId}`
}

/** Splits a listing key; undefined if it is malformed. */
export function parseListingKey(key: string): { providerPeerId: string; deviceId: string } | undefined {
  const m = LISTING_KEY_PATTERN.exec(key)
  if (m === null || key.length > 200) return undefined
  return { providerPeerId: m[1]!, deviceId: m[2]! }
}

/** Lower-case hex id of 32 bytes (see `recordId`). */
export const IdSchema = z.string().regex(/^[0-9a-f]{64}$/, 'id must be 64 lower-case hex characters')

/** OpenSSH SHA-256 fingerprint as printed by `ssh-keygen -l`: 'SHA256:' + 43 base64 chars. */
export const SshFingerprintSchema = z
  .string()
  .regex(/^SHA256:[A-Za-z0-9+/]{43}$/, "fingerprint must be an OpenSSH 'SHA256:…' fingerprint")

const SSH_KEY_TYPES = [
  'ssh-ed25519',
  'sk-ssh-ed25519@openssh.com',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'sk-ecdsa-sha2-nistp256@openssh.com',
  'ssh-rsa',
]
/** One OpenSSH authorized_keys line without options: '<type> <base64> [comment]'. */
export const SshPublicKeySchema = z
  .string()
  .max(LIMITS.maxSshKeyLength)
  .regex(/^[a-z0-9@.-]+ [A-Za-z0-9+/]+={0,2}(?: [\x20-\x7e]{1,200})?$/, 'must be an OpenSSH public key line')
  .refine((s) => SSH_KEY_TYPES.includes(s.slice(0, s.indexOf(' '))), 'unsupported SSH key type')

/** A Docker image reference (repository[:tag][@digest]). */
export const ImageRefSchema = z
  .string()
  .max(LIMITS.maxImageRefLength)
  .regex(/^[a-z0-9][a-zA-Z0-9._/:@+-]*$/, 'must be a Docker image reference')

const MULTIADDR_PATTERN = /^\/[\x21-\x7e]+$/
const SSH_URL_PATTERN = /^ssh:\/\/(?:[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\]):[0-9]{1,5}$/
/** A relay or endpoint address: a libp2p multiaddr, or `ssh://host:port` (SSH jump relay). */
export const EndpointSchema = z
  .string()
  .max(LIMITS.maxRelayLength)
  .refine(
    (s) => MULTIADDR_PATTERN.test(s) || SSH_URL_PATTERN.test(s),
    'must be a multiaddr or ssh://host:port',
  )

export const BitcoinNetworkSchema = z.enum(BITCOIN_NETWORKS)

/** Address prefixes per network (bech32 HRP or base58 leading character); checked case-insensitively. */
const ADDRESS_PREFIXES: Record<BitcoinNetwork, readonly string[]> = {
  mainnet: ['bc1', '1', '3'],
  testnet: ['tb1', 'm', 'n', '2'],
  signet: ['tb1', 'm', 'n', '2'],
  regtest: ['bcrt1', 'm', 'n', '2'],
}

/** True if the address prefix belongs to `network` (a cheap sanity check; payments decode it fully). */
export function addressMatchesNetwork(address: string, network: BitcoinNetwork): boolean {
  const lower = address.toLowerCase()
  // bcrt1 also starts with 'b', tb1 never collides with the base58 prefixes.
  if (network !== 'regtest' && lower.startsWith('bcrt1')) return false
  return ADDRESS_PREFIXES[network].some((p) => (p.length > 1 ? lower.startsWith(p) : address.startsWith(p)))
}

/** A Bitcoin address (base58 or bech32/bech32m); the prefix is checked against the network by invoices. */
export const BitcoinAddressSchema = z
  .string()
  .min(14)
  .max(100)
  .regex(/^[A-Za-z0-9]+$/, 'must be a Bitcoin address')

export const TxidSchema = z.string().regex(/^[0-9a-f]{64}$/, 'txid must be 64 lower-case hex characters')

/** What to pay, where, and until when. */
export const InvoiceSchema = z
  .strictObject({
    network: BitcoinNetworkSchema,
    address: BitcoinAddressSchema,
    amountSats: SatsSchema.min(1),
    expiresAt: TimestampSchema,
  })
  .refine((i) => addressMatchesNetwork(i.address, i.network), {
    message: 'invoice address does not belong to the invoice network',
    path: ['address'],
  })
export type Invoice = z.infer<typeof InvoiceSchema>

// ---------- record bodies ----------

/** Measured by the provider's benchmark at registration. */
export const DeviceSpecsSchema = z.strictObject({
  /** Docker platform architecture: 'amd64', 'arm64', 'armhf', … */
  arch: z.string().regex(/^[a-z0-9_]{1,16}$/, 'arch must be a short lower-case name like arm64'),
  cpuModel: singleLine(128),
  cpuCores: boundedInt(1, LIMITS.maxCpuCores),
  /** Single-core SHA-256 throughput in MB/s (higher is faster). */
  cpuScore: boundedInt(0, 1_000_000),
  memoryMb: boundedInt(1, LIMITS.maxMemoryMb),
  diskFreeMb: boundedInt(0, LIMITS.maxDiskMb),
  diskWriteMBps: boundedInt(0, 1_000_000),
  dockerVersion: z.string().regex(/^[0-9A-Za-z.+~-]{1,32}$/, 'dockerVersion must be a version string'),
  kernel: singleLine(64),
})
export type DeviceSpecs = z.infer<typeof DeviceSpecsSchema>

/** Resources one lease gets (applied to its container). */
export const ContainerLimitsSchema = z.strictObject({
  /** Thousandths of a CPU (1000 = one core). */
  cpus: boundedInt(1, LIMITS.maxCpuCores * 1000),
  memoryMb: boundedInt(1, LIMITS.maxMemoryMb),
  diskMb: boundedInt(1, LIMITS.maxDiskMb),
  pidsLimit: boundedInt(1, LIMITS.maxPidsLimit),
})
export type ContainerLimits = z.infer<typeof ContainerLimitsSchema>

export const LISTING_STATUSES = ['listed', 'unlisted'] as const

export const ListingBodySchema = z
  .strictObject({
    deviceId: DeviceIdSchema,
    /** Increases with every re-sign; readers keep the highest version per listing key. */
    version: boundedInt(1, Number.MAX_SAFE_INTEGER),
    status: z.enum(LISTING_STATUSES),
    name: singleLine(LIMITS.maxNameLength).min(1),
    description: textSchema(LIMITS.maxDescriptionLength),
    specs: DeviceSpecsSchema,
    satsPerHour: SatsSchema.min(1),
    minHours: boundedInt(1, LIMITS.maxHours),
    maxHours: boundedInt(1, LIMITS.maxHours),
    /** How many leases may run at the same time. */
    slots: boundedInt(1, LIMITS.maxSlots),
    images: z.array(ImageRefSchema).min(1).max(LIMITS.maxImages),
    limits: ContainerLimitsSchema,
    /** Fingerprint of the provider's SSH host key; renters pin it. */
    sshHostKey: SshFingerprintSchema,
    relays: z.array(EndpointSchema).max(LIMITS.maxRelays),
    bitcoinNetwork: BitcoinNetworkSchema,
  })
  .refine((l) => l.minHours <= l.maxHours, {
    message: 'minHours must not exceed maxHours',
    path: ['minHours'],
  })
export type ListingBody = z.infer<typeof ListingBodySchema>

export const PresenceBeatBodySchema = z.strictObject({
  /** Device ids of the signer's listings that are online; absent = all of them. */
  listings: z.array(DeviceIdSchema).max(LIMITS.maxPresenceListings).optional(),
  /** Increases with every beat of this node (restarts may reset it; createdAt orders across restarts). */
  seq: boundedInt(0, Number.MAX_SAFE_INTEGER),
  /** Where the signer can be dialled now (libp2p multiaddrs, relay circuits included), so any node can reach it. */
  addrs: z.array(EndpointSchema).max(LIMITS.maxSshEndpoints).optional(),
  load: z
    .strictObject({
      activeLeases: boundedInt(0, LIMITS.maxSlots * LIMITS.maxPresenceListings),
      freeSlots: boundedInt(0, LIMITS.maxSlots * LIMITS.maxPresenceListings),
    })
    .optional(),
})
export type PresenceBeatBody = z.infer<typeof PresenceBeatBodySchema>

export const RentRequestBodySchema = z.strictObject({
  listingKey: ListingKeySchema,
  /** The listing version the renter saw; a provider may refuse if it has changed since. */
  listingVersion: boundedInt(1, Number.MAX_SAFE_INTEGER),
  durationSeconds: boundedInt(1, LIMITS.maxLeaseSeconds),
  image: ImageRefSchema,
  sshPublicKeys: z.array(SshPublicKeySchema).min(1).max(LIMITS.maxSshKeys),
  /** Where refunds go; without it a refund needs another message. */
  refundAddress: BitcoinAddressSchema.optional(),
})
export type RentRequestBody = z.infer<typeof RentRequestBodySchema>

export const OfferBodySchema = z
  .strictObject({
    /** recordId() of the RentRequest this answers. */
    requestId: IdSchema,
    listingKey: ListingKeySchema,
    /** Peer id of the renter (the RentRequest signer). */
    renter: PeerIdStringSchema,
    durationSeconds: boundedInt(1, LIMITS.maxLeaseSeconds),
    priceSats: SatsSchema.min(1),
    invoice: InvoiceSchema,
  })
  .refine((o) => o.invoice.amountSats === o.priceSats, {
    message: 'invoice amount must equal the price',
    path: ['invoice', 'amountSats'],
  })
export type OfferBody = z.infer<typeof OfferBodySchema>

export const SshAccessSchema = z.strictObject({
  user: z.string().regex(/^[a-z_][a-z0-9_-]{0,31}$/, 'user must be a POSIX user name'),
  /** How to reach the SSH server: the provider's multiaddrs (libp2p) and/or ssh://relay:port jump hosts. */
  endpoints: z.array(EndpointSchema).min(1).max(LIMITS.maxSshEndpoints),
  hostKeyFingerprint: SshFingerprintSchema,
  /**
   * The host key itself (`ssh-ed25519 AAAA…`), so a renter can pin it in known_hosts without a probing
   * handshake; renters check that it has the listing's fingerprint.
   */
  hostPublicKey: SshPublicKeySchema.optional(),
})
export type SshAccess = z.infer<typeof SshAccessSchema>

export const LeaseBodySchema = z
  .strictObject({
    leaseId: IdSchema,
    /** recordId() of the Offer that was paid. */
    offerId: IdSchema,
    renter: PeerIdStringSchema,
    listingKey: ListingKeySchema,
    startsAt: TimestampSchema,
    /** When the lease ends (not when this record expires). */
    expiresAt: TimestampSchema,
    ssh: SshAccessSchema,
  })
  .refine((l) => l.expiresAt > l.startsAt, { message: 'lease must end after it starts', path: ['expiresAt'] })
  .refine((l) => l.expiresAt - l.startsAt <= 2 * LIMITS.maxLeaseSeconds * 1000, {
    message: 'lease is longer than the protocol allows',
    path: ['expiresAt'],
  })
export type LeaseBody = z.infer<typeof LeaseBodySchema>

export const LeaseExtensionBodySchema = z
  .strictObject({
    leaseId: IdSchema,
    addSeconds: boundedInt(1, LIMITS.maxLeaseSeconds),
    priceSats: SatsSchema.min(1),
    invoice: InvoiceSchema,
  })
  .refine((e) => e.invoice.amountSats === e.priceSats, {
    message: 'invoice amount must equal the price',
    path: ['invoice', 'amountSats'],
  })
export type LeaseExtensionBody = z.infer<typeof LeaseExtensionBodySchema>

export const LEASE_END_REASONS = ['expired', 'cancelled', 'provision-failed', 'provider-offline'] as const
export type LeaseEndReason = (typeof LEASE_END_REASONS)[number]

export const LeaseEndBodySchema = z.strictObject({
  leaseId: IdSchema,
  reason: z.enum(LEASE_END_REASONS),
  endedAt: TimestampSchema,
  servedSeconds: boundedInt(0, 2 * LIMITS.maxLeaseSeconds),
  refundDueSats: SatsSchema,
})
export type LeaseEndBody = z.infer<typeof LeaseEndBodySchema>

export const RefundBodySchema = z.strictObject({
  leaseId: IdSchema,
  amountSats: SatsSchema.min(1),
  address: BitcoinAddressSchema,
  /** Set once the refund transaction is broadcast. */
  txid: TxidSchema.optional(),
})
export type RefundBody = z.infer<typeof RefundBodySchema>

// ---------- market history (the public offers log) ----------

/**
 * What one public history entry reports. 'refund-failed' is a refund that was due and could not be made;
 * 'outage' is signed by the renter of a lease whose provider stopped beating.
 */
export const HISTORY_KINDS = [
  'offer',
  'lease',
  'lease-extension',
  'lease-end',
  'refund',
  'refund-failed',
  'outage',
] as const
export type HistoryKind = (typeof HISTORY_KINDS)[number]

const base64url = (chars: number) =>
  z.string().regex(new RegExp(`^[A-Za-z0-9_-]{${chars}}$`), `must be ${chars} base64url characters`)

/** Private fields encrypted to one party: X25519 (derived from its Ed25519 peer key) + ChaCha20-Poly1305. */
export const SealedBoxSchema = z.strictObject({
  /** Peer id of the only party that can open it. */
  to: PeerIdStringSchema,
  /** Ephemeral X25519 public key (32 bytes). */
  epk: base64url(43),
  /** AEAD nonce (12 bytes). */
  nonce: base64url(16),
  /** Ciphertext and tag. */
  ct: z
    .string()
    .min(22)
    .max(2048)
    .regex(/^[A-Za-z0-9_-]+$/, 'ct must be base64url'),
})
export type SealedBox = z.infer<typeof SealedBoxSchema>

/**
 * A public market-history entry: ids, parties, amounts, times and outcome in the clear, everything else
 * (payment and refund addresses, txids, SSH access) sealed to the counterparty.
 */
export const HistoryBodySchema = z
  .strictObject({
    kind: z.enum(HISTORY_KINDS),
    /** The lease (= recordId() of the Offer that started it). */
    leaseId: IdSchema,
    /** recordId() of the full signed record this entry stands for, which both parties hold. */
    recordId: IdSchema.optional(),
    listingKey: ListingKeySchema,
    provider: PeerIdStringSchema,
    renter: PeerIdStringSchema,
    /** offer/lease-extension: price; refund/refund-failed: amount; lease-end: refund due. */
    amountSats: SatsSchema.optional(),
    /** lease: start; outage: first moment without presence. */
    startsAt: TimestampSchema.optional(),
    /** lease: planned end; lease-end: when it ended; outage: when presence came back (or the lease ended). */
    endsAt: TimestampSchema.optional(),
    reason: z.enum(LEASE_END_REASONS).optional(),
    /** Occurrence number for kinds that can repeat within one lease (extensions, refunds, outages). */
    seq: boundedInt(0, 10_000).optional(),
    sealed: SealedBoxSchema.optional(),
  })
  .refine((h) => h.kind !== 'lease-end' || h.reason !== undefined, {
    message: 'a lease-end entry needs a reason',
    path: ['reason'],
  })
  .refine((h) => !(h.kind === 'refund' || h.kind === 'refund-failed') || (h.amountSats ?? 0) > 0, {
    message: 'a refund entry needs a positive amount',
    path: ['amountSats'],
  })
  .refine(
    (h) =>
      h.kind !== 'outage' || (h.startsAt !== undefined && h.endsAt !== undefined && h.endsAt >= h.startsAt),
    { message: 'an outage entry needs startsAt <= endsAt', path: ['endsAt'] },
  )
export type HistoryBody = z.infer<typeof HistoryBodySchema>
