/**
 * Every protocol id, topic name, size limit and timeout of the RPi Broker wire protocol, in one place.
 * Changing anything here that a peer can observe is a protocol change: bump PROTOCOL_VERSION or the id.
 */
import { z } from 'zod'

/** Version of the signed record envelope (`SignedRecord.v`). */
export const PROTOCOL_VERSION = 1

/** libp2p stream protocol ids. */
export const PROTOCOLS = {
  /** RentRequest → Offer negotiation (and extensions) between a renter and a provider. */
  rent: '/rpib/rent/1.0.0',
  /** Raw SSH bytes to the provider's embedded SSH server, carried on a libp2p stream. */
  ssh: '/rpib/ssh/1.0.0',
} as const

/**
 * The market a node belongs to. Nodes on different networks never see each other's listings or presence.
 * 'mainnet' | 'testnet' | 'regtest' | `sandbox-${name}` (a local, throw-away market).
 */
export type NetworkId = string

const NETWORK_ID_PATTERN = /^(?:mainnet|testnet|regtest|sandbox-[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?)$/

export function isNetworkId(value: unknown): value is NetworkId {
  return typeof value === 'string' && NETWORK_ID_PATTERN.test(value)
}

export const NetworkIdSchema = z
  .string()
  .max(40)
  .regex(NETWORK_ID_PATTERN, 'network id must be mainnet, testnet, regtest or sandbox-<name>')

/** Bitcoin networks an invoice can be on; an address prefix must always match its network. */
export const BITCOIN_NETWORKS = ['mainnet', 'testnet', 'signet', 'regtest'] as const
export type BitcoinNetwork = (typeof BITCOIN_NETWORKS)[number]

function assertNetworkId(net: NetworkId): void {
  // Thrown (not returned) because a bad id here is a programming error in the caller, not hostile input.
  if (!isNetworkId(net)) throw new TypeError(`invalid network id "${String(net)}"`)
}

/** Gossipsub topic on which providers of `net` publish PresenceBeat records. */
export function presenceTopic(net: NetworkId): string {
  assertNetworkId(net)
  return `/rpib/${net}/presence/1`
}

/** Name of the OrbitDB documents store holding the signed listings of `net`. */
export function listingsDbName(net: NetworkId): string {
  assertNetworkId(net)
  return `rpib-${net}-listings-v1`
}

const EPOCH_PATTERN = /^\d{4}-(?:0[1-9]|1[0-2])$/

/** Name of the OrbitDB log of offers/outcomes for one epoch ('YYYY-MM', UTC) of `net`. */
export function offersDbName(net: NetworkId, epoch: string): string {
  assertNetworkId(net)
  if (!EPOCH_PATTERN.test(epoch)) throw new TypeError(`invalid epoch "${epoch}", expected YYYY-MM`)
  return `rpib-${net}-offers-${epoch}-v1`
}

/** The offers-log epoch ('YYYY-MM', UTC) that contains the instant `unixMs`. */
export function offersEpoch(unixMs: number): string {
  const d = new Date(unixMs)
  return `${String(d.getUTCFullYear()).padStart(4, '0')}-${String(d.getUTCMonth() + 1).padStart(2, '0')}`
}

/** Largest amount of satoshis that can ever exist (21 million BTC); every sats field is bounded by it. */
export const MAX_SATS = 2_100_000_000_000_000

const HOUR_S = 3600
const DAY_MS = 24 * HOUR_S * 1000

/** Hard limits. Every string, array and integer in every record is bounded by one of these. */
export const LIMITS = {
  /** Any encoded record (canonical dag-cbor), before it is even decoded. */
  maxRecordBytes: 16 * 1024,
  maxListingBytes: 8 * 1024,
  maxPresenceBytes: 1024,
  /** Default bound for short identifier-like strings. */
  maxStringLength: 256,
  maxNameLength: 64,
  maxDescriptionLength: 2000,
  maxDeviceIdLength: 64,
  maxImageRefLength: 200,
  maxImages: 16,
  maxRelays: 8,
  maxRelayLength: 256,
  maxSshKeys: 8,
  maxSshKeyLength: 1024,
  maxSshEndpoints: 8,
  maxPresenceListings: 32,
  maxSlots: 64,
  maxCpuCores: 1024,
  /** 365 days: the longest lease (and the longest single extension). */
  maxLeaseSeconds: 365 * 24 * HOUR_S,
  maxHours: 365 * 24,
  maxMemoryMb: 16 * 1024 * 1024,
  maxDiskMb: 1024 * 1024 * 1024,
  maxPidsLimit: 1_000_000,
  maxSats: MAX_SATS,
} as const

/** Timeouts and intervals (milliseconds). */
export const TIMEOUTS = {
  presenceIntervalMs: 30_000,
  /** A device with no beat for this long is shown offline. */
  presenceOfflineAfterMs: 90_000,
  /** How long an Offer (and its invoice) stays payable. */
  offerTtlMs: 30 * 60_000,
  /** How long a provider may take to answer a RentRequest. */
  rentRequestTtlMs: 2 * 60_000,
  /** Tolerated difference between two peers' clocks when checking createdAt/expiresAt. */
  clockSkewMs: 2 * 60_000,
  /** One request/response exchange on a protocol stream. */
  streamTimeoutMs: 15_000,
  dialTimeoutMs: 20_000,
  /** Paid → active: container creation and start. */
  provisionTimeoutMs: 5 * 60_000,
} as const

/** Record types; each has its own signature domain tag, TTL bounds and size limit. */
export const RECORD_TYPES = [
  'listing',
  'presence',
  'rent-request',
  'offer',
  'lease',
  'lease-extension',
  'lease-end',
  'refund',
  'history',
] as const
export type RecordType = (typeof RECORD_TYPES)[number]

/** ttl = expiresAt - createdAt of a record, when the signer does not choose one. */
export const DEFAULT_TTL_MS: Readonly<Record<RecordType, number>> = {
  listing: 7 * DAY_MS,
  presence: 3 * TIMEOUTS.presenceIntervalMs,
  'rent-request': TIMEOUTS.rentRequestTtlMs,
  offer: TIMEOUTS.offerTtlMs,
  lease: 366 * DAY_MS,
  'lease-extension': TIMEOUTS.offerTtlMs,
  'lease-end': 10 * 366 * DAY_MS,
  refund: 10 * 366 * DAY_MS,
  history: 10 * 366 * DAY_MS,
}

/** Records whose ttl exceeds this are rejected: it bounds how long a captured record can be replayed. */
export const MAX_TTL_MS: Readonly<Record<RecordType, number>> = {
  listing: 31 * DAY_MS,
  presence: 10 * 60_000,
  'rent-request': 10 * 60_000,
  offer: DAY_MS,
  lease: 2 * 366 * DAY_MS,
  'lease-extension': DAY_MS,
  // lease-end and refund are permanent market history; readers of old history pass ignoreExpiry.
  'lease-end': 20 * 366 * DAY_MS,
  refund: 20 * 366 * DAY_MS,
  history: 20 * 366 * DAY_MS,
}

/** Largest canonical encoding accepted for each record type. */
export const MAX_RECORD_BYTES: Readonly<Record<RecordType, number>> = {
  listing: LIMITS.maxListingBytes,
  presence: LIMITS.maxPresenceBytes,
  'rent-request': 12 * 1024,
  offer: 2 * 1024,
  lease: 4 * 1024,
  'lease-extension': 2 * 1024,
  'lease-end': 1024,
  refund: 1024,
  history: 4 * 1024,
}

/** Signature domain tag: signed bytes = utf8(tag) || canonical encoding of the unsigned record. */
export function domainTag(type: RecordType): string {
  return `rpib/v${PROTOCOL_VERSION}/${type}\0`
}
