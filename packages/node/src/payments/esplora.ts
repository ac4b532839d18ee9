import { z } from 'zod'
import type { ChainBackend, ChainTx, ChainUtxo, Outspend, TxStatus } from './backend.js'
import { PaymentError } from './errors.js'

/** Esplora JSON shapes (Blockstream/mempool.space API), validated at the edge. */
const EsploraStatus = z.object({
  confirmed: z.boolean(),
  block_height: z.number().int().nonnegative().optional(),
  block_hash: z.string().optional(),
  block_time: z.number().int().nonnegative().optional(),
})
const EsploraVout = z.object({
  scriptpubkey: z.string(),
  scriptpubkey_address: z.string().optional(),
  value: z.number().int().nonnegative(),
})
const EsploraTx = z.object({
  txid: z.string().regex(/^[0-9a-f]{64}$/),
  vin: z.array(
    z.object({
      txid: z.string(),
      vout: z.number().int().nonnegative(),
      prevout: EsploraVout.nullable().optional(),
      sequence: z.number().int().nonnegative(),
      is_coinbase: z.boolean().optional(),
    }),
  ),
  vout: z.array(EsploraVout),
  fee: z.number().int().nonnegative().optional(),
  status: EsploraStatus,
})
const EsploraUtxo = z.object({
  txid: z.string(),
  vout: z.number().int().nonnegative(),
  value: z.number().int().nonnegative(),
  status: EsploraStatus,
})
const EsploraOutspend = z.object({ spent: z.boolean(), txid: z.string().optional() })
const FeeEstimates = z.record(z.string(), z.number().nonnegative())

export type EsploraTxJson = z.infer<typeof EsploraTx>

export interface EsploraBackendOptions {
  /** base URL, e.g. http://127.0.0.1:3002 or https://mempool.space/api */
  url: string
  timeoutMs?: number
  /** pages of 25 confirmed transactions fetched per address at most */
  maxPages?: number
}

function toStatus(s: z.infer<typeof EsploraStatus>): TxStatus {
  return {
    confirmed: s.confirmed,
    ...(s.block_height != null ? { blockHeight: s.block_height } : {}),
    ...(s.block_hash != null ? { blockHash: s.block_hash } : {}),
    ...(s.block_time != null ? { blockTime: s.block_time } : {}),
  }
}

export function esploraTxToChainTx(tx: EsploraTxJson): ChainTx {
  return {
    txid: tx.txid,
    inputs: tx.vin
      .filter((i) => i.is_coinbase !== true)
      .map((i) => ({
        txid: i.txid,
        vout: i.vout,
        sequence: i.sequence,
        ...(i.prevout?.scriptpubkey_address != null ? { address: i.prevout.scriptpubkey_address } : {}),
        ...(i.prevout != null ? { valueSats: i.prevout.value } : {}),
      })),
    outputs: tx.vout.map((o, vout) => ({
      vout,
      scriptHex: o.scriptpubkey,
      valueSats: o.value,
      ...(o.scriptpubkey_address != null ? { address: o.scriptpubkey_address } : {}),
    })),
    ...(tx.fee != null ? { feeSats: tx.fee } : {}),
    status: toStatus(tx.status),
  }
}

/** A ChainBackend over the Esplora REST API (self-hosted, public explorers, or the devchain). */
export function createEsploraBackend(opts: EsploraBackendOptions): ChainBackend {
  const base = opts.url.replace(/\/+$/, '')
  const timeoutMs = opts.timeoutMs ?? 15_000
  const maxPages = opts.maxPages ?? 40

  async function request(
    path: string,
    signal: AbortSignal | undefined,
    init: { method?: string; body?: string } = {},
  ): Promise<{ status: number; text: string }> {
    const timeout = AbortSignal.timeout(timeoutMs)
    const combined = signal != null ? AbortSignal.any([signal, timeout]) : timeout
    let res: Response
    try {
      res = await fetch(base + path, {
        method: init.method ?? 'GET',
        signal: combined,
        ...(init.body != null ? { body: init.body, headers: { 'content-type': 'text/plain' } } : {}),
      })
    } catch (err) {
      if (signal?.aborted === true) throw err
      throw new PaymentError(
        'ERR_BACKEND_UNREACHABLE',
        `Esplora backend at ${base} is unreachable (${(err as Error).message}); check --esplora-url`,
        { cause: err },
      )
    }
    return { status: res.status, text: await res.text() }
  }

  async function getJson<T>(path: string, schema: z.ZodType<T>, signal?: AbortSignal): Promise<T> {
    const r = await request(path, signal)
    if (r.status !== 200) {
      throw new PaymentError(
        'ERR_BACKEND_RESPONSE',
        `Esplora ${path} answered HTTP ${r.status}: ${r.text.slice(0, 200)}`,
      )
    }
    let parsed: unknown
    try {
      parsed = JSON.parse(r.text)
    } catch (err) {
      throw new PaymentError('ERR_BACKEND_RESPONSE', `Esplora ${path} returned invalid JSON`, { cause: err })
    }
    const result = schema.safeParse(parsed)
    if (!result.success) {
      throw new PaymentError(
        'ERR_BACKEND_RESPONSE',
        `Esplora ${path} returned an unexpected shape: ${result.error.message.slice(0, 200)}`,
      )
    }
    return result.data
  }

  async function getText(path: string, signal?: AbortSignal): Promise<string> {
    const r = await request(path, signal)
    if (r.status !== 200) {
      throw new PaymentError(
        'ERR_BACKEND_RESPONSE',
        `Esplora ${path} answered HTTP ${r.status}: ${r.text.slice(0, 200)}`,
      )
    }
    return r.text.trim()
  }

  const enc = encodeURIComponent

  return {
    kind: 'esplora',
    async tipHeight(signal) {
      const text = await getText('/blocks/tip/height', signal)
      const h = Number(text)
      if (!Number.isSafeInteger(h) || h < 0)
        throw new PaymentError('ERR_BACKEND_RESPONSE', `Esplora tip height "${text}" is not a height`)
      return h
    },
    async tipHash(signal) {
      const hash = await getText('/blocks/tip/hash', signal)
      if (!/^[0-9a-f]{64}$/.test(hash))
        throw new PaymentError('ERR_BACKEND_RESPONSE', `Esplora tip hash "${hash}" is not a hash`)
      return hash
    },
    async watchAddresses() {
      // Esplora indexes every address: nothing to register
    },
    async addressTransactions(address, signal) {
      // first page: up to 50 mempool + 25 confirmed; then /txs/chain/:last for 25 more confirmed each
      const first = await getJson(`/address/${enc(address)}/txs`, z.array(EsploraTx), signal)
      const all = [...first]
      let confirmed = first.filter((t) => t.status.confirmed)
      for (let page = 1; page < maxPages && confirmed.length >= 25; page++) {
        const last = confirmed[confirmed.length - 1]!.txid
        confirmed = await getJson(`/address/${enc(address)}/txs/chain/${last}`, z.array(EsploraTx), signal)
        all.push(...confirmed)
      }
      return all.map(esploraTxToChainTx)
    },
    async addressUtxos(address, signal) {
      const utxos = await getJson(`/address/${enc(address)}/utxo`, z.array(EsploraUtxo), signal)
      return utxos.map((u): ChainUtxo => ({
        txid: u.txid,
        vout: u.vout,
        valueSats: u.value,
        status: toStatus(u.status),
      }))
    },
    async transaction(txid, signal) {
      const r = await request(`/tx/${enc(txid)}`, signal)
      if (r.status === 404 || r.status === 400) return undefined
      if (r.status !== 200)
        throw new PaymentError('ERR_BACKEND_RESPONSE', `Esplora /tx answered HTTP ${r.status}`)
      let json: unknown
      try {
        json = JSON.parse(r.text)
      } catch (err) {
        throw new PaymentError('ERR_BACKEND_RESPONSE', 'Esplora /tx returned invalid JSON', { cause: err })
      }
      const parsed = EsploraTx.safeParse(json)
      if (!parsed.success)
        throw new PaymentError('ERR_BACKEND_RESPONSE', 'Esplora /tx returned an unexpected shape')
      return esploraTxToChainTx(parsed.data)
    },
    async transactionHex(txid, signal) {
      const r = await request(`/tx/${enc(txid)}/hex`, signal)
      if (r.status === 404 || r.status === 400) return undefined
      if (r.status !== 200)
        throw new PaymentError('ERR_BACKEND_RESPONSE', `Esplora /tx/hex answered HTTP ${r.status}`)
      return r.text.trim()
    },
    async outspend(txid, vout, signal): Promise<Outspend> {
      const o = await getJson(`/tx/${enc(txid)}/outspend/${vout}`, EsploraOutspend, signal)
      return o.txid != null ? { spent: o.spent, txid: o.txid } : { spent: o.spent }
    },
    async feeRate(targetBlocks, signal) {
      const estimates = await getJson('/fee-estimates', FeeEstimates, signal)
      // the estimate for the largest target that is still <= the wanted one
      const targets = Object.keys(estimates)
        .map(Number)
        .filter((t) => Number.isInteger(t) && t > 0)
        .sort((a, b) => a - b)
      let rate: number | undefined
      for (const t of targets) if (t <= targetBlocks) rate = estimates[String(t)]
      if (rate == null && targets.length > 0) rate = estimates[String(targets[0])]
      return Math.max(1, Math.ceil(rate ?? 1))
    },
    async broadcast(txHex, signal) {
      const r = await request('/tx', signal, { method: 'POST', body: txHex })
      if (r.status !== 200) {
        throw new PaymentError('ERR_TX_REJECTED', `transaction rejected: ${r.text.trim().slice(0, 300)}`)
      }
      return r.text.trim()
    },
  }
}
