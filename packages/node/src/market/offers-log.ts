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
import { TIMEOUTS, offersDbName, offersEpoch, verifyAnyRecord, type SignedRecord } from '@rpib/protocol'
import { RpibError } from '../errors.js'
import type { Logger } from '../log.js'

export const OFFERS_ACCESS_TYPE = 'rpib-offers'

/** Record types that make up the public market history. */
export const HISTORY_TYPES = new Set(['offer', 'lease', 'lease-extension', 'lease-end', 'refund'])

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
  const { start, end } = epochBounds(epoch)
  const created = checked.record.createdAt
  // the skew allowance lets a record signed at the turn of the month land in either epoch
  if (created < start - TIMEOUTS.clockSkewMs || created >= end + TIMEOUTS.clockSkewMs) {
    return { ok: false, detail: `record created at ${created} does not belong to epoch ${epoch}` }
  }
  return { ok: true, record: checked.record }
}

async function accessAddress(networkId: string, epoch: string): Promise<string> {
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
  onRecord?: (record: SignedRecord) => void
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
  private rotating: Promise<void> = Promise.resolve()

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
    for (const db of this.dbs.values()) await db.close()
    this.dbs.clear()
  }

  /** Epochs currently open, newest first. */
  epochs(): string[] {
    return [...this.dbs.keys()].sort().reverse()
  }

  get refused(): number {
    return this.refusedCount
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
    this.options.onRecord?.(check.record)
    return check.record
  }

  /** Every valid record of one epoch (validated again on the way out). */
  async records(epoch: string): Promise<SignedRecord[]> {
    const db = this.dbs.get(epoch)
    if (db == null) return []
    const out: SignedRecord[] = []
    for await (const entry of db.log.iterator()) {
      const check = await checkHistoryPayload(entry.payload, epoch)
      if (check.ok) out.push(check.record)
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
      await db.drop()
      await db.close()
      this.options.log('dropped offers epoch %s (retention %d months)', epoch, this.options.keepEpochs)
    }
  }

  private async open(epoch: string): Promise<EventsDatabase> {
    const address = await accessAddress(this.options.networkId, epoch)
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
        if (typeof entry.hash === 'string') this.options.onRecord?.(check.record)
        return true
      },
    })
    return (await this.options.orbitdb.open(offersDbName(this.options.networkId, epoch), {
      Database: Events(),
      AccessController,
    })) as EventsDatabase
  }
}
