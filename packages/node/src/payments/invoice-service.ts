import { randomBytes } from 'node:crypto'
import { EventEmitter } from 'node:events'
import { logger as makeLogger, type Logger } from '../log.js'
import { assertSats } from './amounts.js'
import { confirmations, type ChainBackend } from './backend.js'
import { bip21Uri, qrSvg, qrTerminal } from './bip21.js'
import { PaymentError } from './errors.js'
import {
  evaluateInvoice,
  DEFAULT_POLICY,
  type ConfirmationPolicy,
  type InvoiceStatus,
} from './invoice-state.js'
import type { InvoicePaymentRecord, InvoiceRecord, InvoiceStore } from './invoice-store.js'
import { addressToScript } from './networks.js'
import type { Wallet } from './wallet.js'

export interface InvoiceEvents {
  /** any change to an invoice (new payment, more confirmations, new status) */
  updated: [invoice: InvoiceRecord]
  /** the status changed; the lease logic starts a lease on `paid` */
  status: [change: { invoice: InvoiceRecord; from: InvoiceStatus; to: InvoiceStatus }]
  /** a block that confirmed a payment left the chain */
  reorg: [
    change: { invoice: InvoiceRecord; txid: string; fromConfirmations: number; toConfirmations: number },
  ]
  /** a payment vanished from the mempool because its inputs were spent by another transaction */
  'double-spend': [change: { invoice: InvoiceRecord; txid: string; replacedBy?: string }]
}

export interface CreateInvoiceRequest {
  amountSats: number
  /** lifetime in ms (default 30 min) */
  expiresInMs?: number
  label?: string
  reference?: string
  refundAddress?: string
}

export interface InvoiceServiceOptions {
  store: InvoiceStore
  backend: ChainBackend
  wallet: Wallet
  policy?: ConfirmationPolicy
  logger?: Logger
  /** how often start() polls the backend (default 10 s; tests use ~100 ms or call poll()) */
  pollIntervalMs?: number
  /** keep watching an unpaid invoice this long after expiry, to catch late payments (default 24 h) */
  lateWindowMs?: number
  /** confirmations beyond the policy after which a paid invoice is no longer watched for reorgs */
  reorgSafetyDepth?: number
  now?: () => number
}

export interface InvoiceService extends EventEmitter<InvoiceEvents> {
  start(): Promise<void>
  stop(): Promise<void>
  /** one round of watching every open invoice; concurrent calls share the round */
  poll(signal?: AbortSignal): Promise<void>
  create(req: CreateInvoiceRequest): Promise<InvoiceRecord>
  get(id: string): InvoiceRecord
  list(): InvoiceRecord[]
  /** pays `amountSats` back to the invoice's refund address (or `to`) from the wallet */
  refund(id: string, amountSats: number, opts?: { to?: string; feeRate?: number }): Promise<{ txid: string }>
}

/** The BIP21 URI and QR codes a renter pays with. */
export async function invoicePaymentRequest(
  invoice: InvoiceRecord,
): Promise<{ uri: string; svg: string; terminal: string }> {
  const uri = bip21Uri(
    invoice.address,
    invoice.amountSats,
    invoice.label != null ? { label: invoice.label } : {},
  )
  return { uri, svg: await qrSvg(uri), terminal: await qrTerminal(uri) }
}

const DEFAULT_EXPIRY_MS = 30 * 60_000

export function createInvoiceService(opts: InvoiceServiceOptions): InvoiceService {
  const log = opts.logger ?? makeLogger('rpib:invoices')
  const policy = opts.policy ?? DEFAULT_POLICY
  const now = opts.now ?? Date.now
  const pollIntervalMs = opts.pollIntervalMs ?? 10_000
  const lateWindowMs = opts.lateWindowMs ?? 24 * 3600_000
  const reorgSafetyDepth = opts.reorgSafetyDepth ?? 6
  const invoices = new Map<string, InvoiceRecord>()
  const emitter = new EventEmitter<InvoiceEvents>()
  let loaded = false
  let timer: NodeJS.Timeout | undefined
  let running = false
  let inFlight: Promise<void> | undefined
  let abort: AbortController | undefined

  async function ensureLoaded(): Promise<void> {
    if (loaded) return
    for (const inv of await opts.store.load()) invoices.set(inv.id, inv)
    loaded = true
  }

  const save = () => opts.store.save([...invoices.values()])

  function watched(inv: InvoiceRecord, t: number): boolean {
    if (inv.paid)
      return inv.payments.some((p) => p.confirmations < policy.confirmationsRequired + reorgSafetyDepth)
    return (
      t <= inv.expiresAt + lateWindowMs ||
      inv.payments.some((p) => p.confirmations < policy.confirmationsRequired + reorgSafetyDepth)
    )
  }

  async function refresh(inv: InvoiceRecord, tipHeight: number, signal?: AbortSignal): Promise<boolean> {
    const t = now()
    const txs = await opts.backend.addressTransactions(inv.address, signal)
    const previous = new Map(inv.payments.map((p) => [`${p.txid}:${p.vout}`, p]))
    const payments: InvoicePaymentRecord[] = []
    for (const tx of txs) {
      for (const out of tx.outputs) {
        if (out.address !== inv.address) continue
        const before = previous.get(`${tx.txid}:${out.vout}`)
        const blockSeen = tx.status.blockTime != null ? Math.min(t, tx.status.blockTime * 1000) : t
        payments.push({
          txid: tx.txid,
          vout: out.vout,
          valueSats: out.valueSats,
          confirmations: confirmations(tx.status, tipHeight),
          seenAt: before?.seenAt ?? blockSeen,
          spends: tx.inputs.map((i) => ({ txid: i.txid, vout: i.vout })),
        })
      }
    }
    const changed: Array<() => void> = []
    const current = new Map(payments.map((p) => [`${p.txid}:${p.vout}`, p]))
    for (const [key, before] of previous) {
      const after = current.get(key)
      if (after == null) {
        // the payment left the mempool or the chain: replaced by a conflicting spend, or reorged out
        let replacedBy: string | undefined
        for (const s of before.spends) {
          const o = await opts.backend.outspend(s.txid, s.vout, signal)
          if (o.spent && o.txid !== before.txid) {
            replacedBy = o.txid ?? 'unknown'
            break
          }
        }
        if (replacedBy != null) {
          const entry = { txid: before.txid, ...(replacedBy !== 'unknown' ? { replacedBy } : {}), at: t }
          inv.doubleSpends.push(entry)
          changed.push(() =>
            emitter.emit('double-spend', {
              invoice: inv,
              txid: before.txid,
              ...(entry.replacedBy != null ? { replacedBy } : {}),
            }),
          )
          log('invoice %s: payment %s was double-spent by %s', inv.id, before.txid, replacedBy)
        }
        if (before.confirmations > 0) {
          inv.reorgs++
          changed.push(() =>
            emitter.emit('reorg', {
              invoice: inv,
              txid: before.txid,
              fromConfirmations: before.confirmations,
              toConfirmations: 0,
            }),
          )
        }
      } else if (after.confirmations < before.confirmations) {
        inv.reorgs++
        changed.push(() =>
          emitter.emit('reorg', {
            invoice: inv,
            txid: after.txid,
            fromConfirmations: before.confirmations,
            toConfirmations: after.confirmations,
          }),
        )
        log(
          'invoice %s: payment %s went from %d to %d confirmations',
          inv.id,
          after.txid,
          before.confirmations,
          after.confirmations,
        )
      }
    }
    const e = evaluateInvoice(inv, payments, policy, t)
    const from = inv.status
    const dirty =
      changed.length > 0 || from !== e.status || JSON.stringify(payments) !== JSON.stringify(inv.payments)
    if (!dirty) return false
    Object.assign(inv, {
      payments,
      status: e.status,
      paid: e.paid,
      receivedSats: e.receivedSats,
      settledSats: e.settledSats,
      lateSats: e.lateSats,
      shortfallSats: e.shortfallSats,
      excessSats: e.excessSats,
      updatedAt: t,
    })
    for (const fire of changed) fire()
    if (from !== e.status) {
      log('invoice %s: %s -> %s', inv.id, from, e.status)
      emitter.emit('status', { invoice: inv, from, to: e.status })
    }
    emitter.emit('updated', inv)
    return true
  }

  async function pollOnce(signal?: AbortSignal): Promise<void> {
    await ensureLoaded()
    const t = now()
    const open = [...invoices.values()].filter((inv) => watched(inv, t))
    if (open.length === 0) return
    const tip = await opts.backend.tipHeight(signal)
    let dirty = false
    for (const inv of open) {
      signal?.throwIfAborted()
      if (await refresh(inv, tip, signal)) dirty = true
    }
    if (dirty) await save()
  }

  function poll(signal?: AbortSignal): Promise<void> {
    inFlight ??= pollOnce(signal).finally(() => {
      inFlight = undefined
    })
    return inFlight
  }

  function schedule(): void {
    if (!running) return
    timer = setTimeout(() => {
      abort = new AbortController()
      poll(abort.signal)
        .catch((err: unknown) => {
          if (running) log.error('invoice poll failed: %s', err instanceof Error ? err.message : String(err))
        })
        .finally(schedule)
    }, pollIntervalMs)
  }

  function get(id: string): InvoiceRecord {
    const exact = invoices.get(id)
    if (exact != null) return exact
    const matches = id.length >= 6 ? [...invoices.values()].filter((i) => i.id.startsWith(id)) : []
    if (matches.length > 1) {
      throw new PaymentError('ERR_INVOICE_UNKNOWN', `invoice id ${id} is ambiguous; give more characters`)
    }
    const inv = matches[0]
    if (inv == null)
      throw new PaymentError('ERR_INVOICE_UNKNOWN', `no invoice ${id}; list them with \`rpib invoice list\``)
    return inv
  }

  const service = Object.assign(emitter, {
    async start() {
      await ensureLoaded()
      if (running) return
      running = true
      schedule()
    },
    async stop() {
      running = false
      if (timer != null) clearTimeout(timer)
      timer = undefined
      abort?.abort()
      await inFlight?.catch(() => undefined)
      await save()
    },
    poll,
    async create(req: CreateInvoiceRequest): Promise<InvoiceRecord> {
      await ensureLoaded()
      assertSats(req.amountSats, 'invoice amount')
      if (req.amountSats < 1)
        throw new PaymentError('ERR_AMOUNT_INVALID', 'an invoice must ask for at least 1 sat')
      if (req.refundAddress != null) addressToScript(req.refundAddress, opts.wallet.network)
      const expiresInMs = req.expiresInMs ?? DEFAULT_EXPIRY_MS
      if (!Number.isSafeInteger(expiresInMs) || expiresInMs <= 0) {
        throw new PaymentError(
          'ERR_INVOICE_INVALID',
          'invoice expiry must be a positive number of milliseconds',
        )
      }
      const addr = await opts.wallet.nextReceiveAddress()
      const t = now()
      const inv: InvoiceRecord = {
        id: randomBytes(16).toString('hex'),
        address: addr.address,
        addressIndex: addr.index,
        amountSats: req.amountSats,
        createdAt: t,
        expiresAt: t + expiresInMs,
        ...(req.label != null ? { label: req.label } : {}),
        ...(req.reference != null ? { reference: req.reference } : {}),
        ...(req.refundAddress != null ? { refundAddress: req.refundAddress } : {}),
        status: 'awaiting',
        paid: false,
        receivedSats: 0,
        settledSats: 0,
        lateSats: 0,
        shortfallSats: req.amountSats,
        excessSats: 0,
        payments: [],
        reorgs: 0,
        doubleSpends: [],
        refunds: [],
        updatedAt: t,
      }
      invoices.set(inv.id, inv)
      await save()
      log('invoice %s: %d sats to %s', inv.id, inv.amountSats, inv.address)
      return inv
    },
    get,
    list() {
      return [...invoices.values()].sort((a, b) => b.createdAt - a.createdAt)
    },
    async refund(id: string, amountSats: number, o: { to?: string; feeRate?: number } = {}) {
      await ensureLoaded()
      const inv = get(id)
      const to = o.to ?? inv.refundAddress
      if (to == null)
        throw new PaymentError('ERR_INVOICE_INVALID', `invoice ${inv.id} has no refund address; give one`)
      const refunded = inv.refunds.reduce((a, r) => a + r.amountSats, 0)
      const refundable = inv.receivedSats + inv.lateSats - refunded
      assertSats(amountSats, 'refund amount')
      if (amountSats > refundable) {
        throw new PaymentError(
          'ERR_AMOUNT_INVALID',
          `refund of ${amountSats} sats exceeds the ${refundable} sats received and not yet refunded`,
        )
      }
      const sent = await opts.wallet.send({
        to,
        amountSats,
        ...(o.feeRate != null ? { feeRate: o.feeRate } : {}),
      })
      inv.refunds.push({ txid: sent.txid, address: to, amountSats, at: now() })
      inv.updatedAt = now()
      await save()
      emitter.emit('updated', inv)
      return { txid: sent.txid }
    },
  })
  return service
}
