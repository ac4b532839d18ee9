import {
  Events,
  type AccessControllerFactory,
  type EventsDatabase,
  type OrbitDB,
  type OrbitEntry,
} from '@orbitdb/core'
import * as dagCbor from '@ipld/dag-cbor'
import { base58btc } from 'multiformats/bases/base58'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import type { PrivateKey } from '@libp2p/interface'
import {
  SshAccessSchema,
  TIMEOUTS,
  TxidSchema,
  BitcoinAddressSchema,
  offersEpoch,
  offersDbName,
  signRecord,
  textSchema,
  verifyAnyRecord,
  type HistoryBody,
  type HistoryRecord,
  type SignedRecord,
} from '@rpib/protocol'
import { z } from 'zod'
import { RpibError } from '../errors.js'
import type { Logger } from '../log.js'
import { open, seal } from './seal.js'

export const OFFERS_ACCESS_TYPE = 'rpib-offers'

/**
 * Record types that make up the public market history: only `history` entries, whose private fields are
 * sealed; the raw Offer/Lease/Refund records carry addresses and SSH access and never enter the log.
 */
export const HISTORY_TYPES = new Set(['history'])

/** The fields of a history entry that only the counterparty may read (sealed to it). */
export const PrivateHistoryFieldsSchema = z.strictObject({
  invoiceAddress: BitcoinAddressSchema.optional(),
  refundAddress: BitcoinAddressSchema.optional(),
  txid: TxidSchema.optional(),
  ssh: SshAccessSchema.optional(),
  /** why a refund failed, in the provider's words */
  detail: textSchema(300).optional(),
})
export type PrivateHistoryFields = z.infer<typeof PrivateHistoryFieldsSchema>

/** Associated data of a sealed box: binds it to its signer, entry and recipient. */
function sealContext(signer: string, body: Omit<HistoryBody, 'sealed'>, to: string): Uint8Array {
  const parts = ['rpib/v1/history-seal', signer, body.kind, body.leaseId, String(body.seq ?? 0), to]
  return new TextEncoder().encode(parts.join('\0'))
}

/** The counterparty of an entry: the renter for the provider's statements, the provider for outages. */
export function counterpartyOf(body: Pick<HistoryBody, 'kind' | 'provider' | 'renter'>): string {
  return body.kind === 'outage' ? body.provider : body.renter
}

/** The party an entry must be signed by: its provider, or the renter for an outage report. */
export function speakerOf(body: Pick<HistoryBody, 'kind' | 'provider' | 'renter'>): string {
  return body.kind === 'outage' ? body.renter : body.provider
}

/** Signs a history entry, sealing `privateFields` (if any) to the entry's counterparty. */
export async function signHistory(
  body: Omit<HistoryBody, 'sealed'>,
  privateFields: PrivateHistoryFields | undefined,
  privateKey: PrivateKey,
  signer: string,
  options: { now?: number } = {},
): Promise<HistoryRecord> {
  const fields = privateFields === undefined ? undefined : PrivateHistoryFieldsSchema.parse(privateFields)
  const hasPrivate = fields !== undefined && Object.keys(fields).length > 0
  const to = counterpartyOf(body)
  const sealed = hasPrivate
    ? seal(new TextEncoder().encode(JSON.stringify(fields)), to, sealContext(signer, body, to))
    : undefined
  return signRecord('history', { ...body, ...(sealed ? { sealed } : {}) }, privateKey, options)
}

/** Opens the sealed fields of an entry addressed to the holder of `privateKey`. */
export function openHistory(record: HistoryRecord, privateKey: PrivateKey): PrivateHistoryFields {
  const { sealed, ...body } = record.body
  if (sealed === undefined) return {}
  const bytes = open(sealed, privateKey, sealContext(record.signer, body, sealed.to))
  let parsed: unknown
  try {
    parsed = JSON.parse(new TextDecoder().decode(bytes))
  } catch {
    throw new RpibError('ERR_SEAL_OPEN', 'the sealed fields are not valid JSON')
  }
  const fields = PrivateHistoryFieldsSchema.safeParse(parsed)
  if (!fields.success) throw new RpibError('ERR_SEAL_OPEN', 'the sealed fields do not match their schema')
  return fields.data
}

/** The epochs kept: the current month and the `keep - 1` before it, newest first. */
export function retainedEpochs(now: number, keep: number): string[] {
  const d = new Date(now)
  const out: string[] = []
  for (let i = 0; i < keep; i++) {
    out.push(offersEpoch(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() - i, 1)))
  }
  return out
}

function epochBounds(epoch: string): { start: number; end: number } {
  const [year, month] = epoch.split('-').map(Number) as [number, number]
  return { start: Date.UTC(year, month - 1, 1), end: Date.UTC(year, month, 1) }
}

export type HistoryCheck = { ok: true; record: SignedRecord } | { ok: false; detail: string }

/** An offers-log entry must ADD one signed history record created within its epoch. */
export async function checkHistoryPayload(payload: unknown, epoch: string): Promise<HistoryCheck> {
  const { op, value } = (payload ?? {}) as { op?: unknown; value?: unknown }
  if (op !== 'ADD') return { ok: false, detail: `operation ${String(op)} is not allowed` }
  const bytes = (value as { record?: unknown } | null)?.record
  if (!(bytes instanceof Uint8Array)) return { ok: false, detail: 'entry carries no record bytes' }
  const checked = await verifyAnyRecord(bytes, { ignoreExpiry: true })
  if (!checked.ok) return { ok: false, detail: `${checked.error.code}: ${checked.error.message}` }
  if (!HISTORY_TYPES.has(checked.record.type))
    return { ok: false, detail: `${checked.record.type} is not history` }
  const body = checked.record.body as HistoryBody
  if (checked.record.signer !== speakerOf(body)) {
    return { ok: false, detail: `a ${body.kind} entry must be signed by ${speakerOf(body)}` }
  }
  if (body.sealed !== undefined && body.sealed.to !== counterpartyOf(body)) {
    return { ok: false, detail: 'private fields are sealed to someone other than the counterparty' }
  }
  const { start, end } = epochBounds(epoch)
  const created = checked.record.createdAt
  // the skew allowance lets a record signed at the turn of the month land in either epoch
  if (created < start - TIMEOUTS.clockSkewMs || created >= end + TIMEOUTS.clockSkewMs) {
    return { ok: false, detail: `record created at ${created} does not belong to epoch ${epoch}` }
  }
  return { ok: true, record: checked.record }
}

/** The access-controller address of one epoch's log (part of the database address every node derives). */
export async function offersAccessAddress(networkId: string, epoch: string): Promise<string> {
  const bytes = dagCbor.encode({ type: OFFERS_ACCESS_TYPE, networkId, epoch, v: 1 })
  const cid = CID.createV1(dagCbor.code, await sha256.digest(bytes))
  return `/${OFFERS_ACCESS_TYPE}/${cid.toString(base58btc)}`
}

export interface OffersLogOptions {
  orbitdb: OrbitDB
  networkId: string
  /** epochs (months) kept, the current one included; older ones are dropped locally */
  keepEpochs: number
  log: Logger
  now?: () => number
  /** how often to check for a new month (ms) */
  rotateCheckMs?: number
}

/**
 * The public, signed market history (offers and lease outcomes), one OrbitDB events log per month:
 * logs only grow, so rotation bounds what a new node must sync. The node keeps `keepEpochs` months
 * and drops older ones; each log accepts only signed history records created within its month.
 */
export class OffersLog {
  private readonly dbs = new Map<string, EventsDatabase>()
  private timer: NodeJS.Timeout | undefined
  private readonly now: () => number
  private refusedCount = 0
  private syncErrorCount = 0
  /** OrbitDB reports a refused chain as a sync error: counted, never thrown */
  private readonly onSyncError = (err: unknown): void => {
    this.syncErrorCount++
    this.options.log('offers sync error: %s', err instanceof Error ? err.message : String(err))
  }
  private rotating: Promise<void> = Promise.resolve()
  private readonly watchers = new Set<(record: HistoryRecord) => void>()

  constructor(private readonly options: OffersLogOptions) {
    this.now = options.now ?? Date.now
  }

  async start(): Promise<void> {
    await this.rotate()
    this.timer = setInterval(
      () => {
        this.rotating = this.rotating
          .then(() => this.rotate())
          .catch((err: unknown) => {
            this.options.log.error('offers log rotation failed: %s', (err as Error).message)
          })
      },
      this.options.rotateCheckMs ?? 60 * 60_000,
    )
    this.timer.unref()
  }

  async stop(): Promise<void> {
    clearInterval(this.timer)
    await this.rotating
    for (const db of this.dbs.values()) {
      db.events.off('error', this.onSyncError)
      await db.close()
    }
    this.dbs.clear()
  }

  /** Epochs currently open, newest first. */
  epochs(): string[] {
    return [...this.dbs.keys()].sort().reverse()
  }

  get refused(): number {
    return this.refusedCount
  }

  /** Sync errors OrbitDB reported (each refused chain is one). */
  get syncErrors(): number {
    return this.syncErrorCount
  }

  /** Calls `listener` with every valid record appended here or replicated from peers; returns unwatch. */
  watch(listener: (record: HistoryRecord) => void): () => void {
    this.watchers.add(listener)
    return () => this.watchers.delete(listener)
  }

  private emit(record: SignedRecord): void {
    for (const watcher of this.watchers) watcher(record as HistoryRecord)
  }

  /** Appends a signed history record to the log of the epoch it was created in. */
  async append(bytes: Uint8Array): Promise<SignedRecord> {
    const checked = await verifyAnyRecord(bytes, { ignoreExpiry: true })
    if (!checked.ok) throw new RpibError('ERR_HISTORY_INVALID', `record refused: ${checked.error.message}`)
    const epoch = offersEpoch(checked.record.createdAt)
    const db = this.dbs.get(epoch)
    if (db == null) {
      throw new RpibError(
        'ERR_HISTORY_EPOCH',
        `epoch ${epoch} is not kept by this node (kept: ${this.epochs().join(', ')})`,
      )
    }
    const check = await checkHistoryPayload({ op: 'ADD', value: { record: bytes } }, epoch)
    if (!check.ok) throw new RpibError('ERR_HISTORY_INVALID', `record refused: ${check.detail}`)
    await db.add({ record: bytes })
    this.emit(check.record)
    return check.record
  }

  /** Every valid record of one epoch (validated again on the way out). */
  async records(epoch: string): Promise<HistoryRecord[]> {
    const db = this.dbs.get(epoch)
    if (db == null) return []
    const out: HistoryRecord[] = []
    for await (const entry of db.log.iterator()) {
      const check = await checkHistoryPayload(entry.payload, epoch)
      if (check.ok) out.push(check.record as HistoryRecord)
    }
    return out
  }

  /** Opens the retained epochs that are not open yet; closes and drops the ones past retention. */
  async rotate(): Promise<void> {
    const keep = retainedEpochs(this.now(), this.options.keepEpochs)
    for (const epoch of keep) {
      if (!this.dbs.has(epoch)) this.dbs.set(epoch, await this.open(epoch))
    }
    for (const [epoch, db] of this.dbs) {
      if (keep.includes(epoch)) continue
      this.dbs.delete(epoch)
      db.events.off('error', this.onSyncError)
      await db.drop()
      await db.close()
      this.options.log('dropped offers epoch %s (retention %d months)', epoch, this.options.keepEpochs)
    }
  }

  private async open(epoch: string): Promise<EventsDatabase> {
    const address = await offersAccessAddress(this.options.networkId, epoch)
    const AccessController: AccessControllerFactory = async () => ({
      type: OFFERS_ACCESS_TYPE,
      address,
      write: ['*'],
      canAppend: async (entry: OrbitEntry) => {
        const check = await checkHistoryPayload(entry.payload, epoch)
        if (!check.ok) {
          this.refusedCount++
          this.options.log('refused offers entry in %s: %s', epoch, check.detail)
          return false
        }
        if (typeof entry.hash === 'string') this.emit(check.record)
        return true
      },
    })
    const db = (await this.options.orbitdb.open(offersDbName(this.options.networkId, epoch), {
      Database: Events(),
      AccessController,
    })) as EventsDatabase
    db.events.on('error', this.onSyncError)
    return db
  }
}
