import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { z } from 'zod'
import { readIfExists, writePrivateFile } from '../../config/paths.js'
import { logger as makeLogger, type Logger } from '../../log.js'
import { PaymentError } from '../errors.js'
import { addressToScript } from '../networks.js'
import { DevChain, RejectError } from './chain.js'
import { statusJson, txJson } from './esplora-json.js'

export interface DevchainOptions {
  /** where the chain is persisted (devchain.json); in memory only when absent */
  dataDir?: string
  /** 0 picks a free port */
  port?: number
  /** mine a block every so often (only when something is in the mempool), off by default */
  mineIntervalMs?: number
  /** fee estimates served by /fee-estimates, in sat/vB */
  feeRateSatVb?: number
  logger?: Logger
}

export interface Devchain {
  start(): Promise<void>
  stop(): Promise<void>
  /** the Esplora-compatible base URL, e.g. http://127.0.0.1:39111 */
  readonly url: string
  readonly chain: DevChain
  mine(blocks?: number, address?: string): Promise<string[]>
  faucet(address: string, sats: number): Promise<string>
  reorg(
    depth: number,
    opts?: { drop?: string[] | 'all'; mineAfter?: number },
  ): Promise<{ disconnected: string[] }>
}

const PersistedState = z.object({
  version: z.literal(1),
  minerKeyHex: z.string().regex(/^[0-9a-f]{64}$/),
  blocks: z.array(z.object({ time: z.number().int(), txs: z.array(z.string()).min(1) })),
  mempool: z.array(z.string()),
})

const MineBody = z.object({
  blocks: z.number().int().min(1).max(1000).default(1),
  address: z.string().optional(),
})
const FaucetBody = z.object({
  address: z.string(),
  sats: z.number().int().positive(),
  mine: z.boolean().default(false),
})
const ReorgBody = z.object({
  depth: z.number().int().min(1),
  drop: z.union([z.literal('all'), z.array(z.string())]).optional(),
  mineAfter: z.number().int().min(0).max(1000).optional(),
})

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message)
  }
}

/**
 * The embedded regtest chain with its Esplora-compatible HTTP API on 127.0.0.1 (plus /admin endpoints
 * for mine, faucet and reorg). Tests and the local sandbox point the ordinary Esplora backend at it.
 */
export function createDevchain(opts: DevchainOptions = {}): Devchain {
  const log = opts.logger ?? makeLogger('rpib:devchain')
  const statePath = opts.dataDir != null ? join(opts.dataDir, 'devchain.json') : undefined
  let chain = new DevChain()
  let server: Server | undefined
  let url = ''
  let interval: NodeJS.Timeout | undefined
  let saving: Promise<void> = Promise.resolve()

  function save(): Promise<void> {
    if (statePath == null) return Promise.resolve()
    const state = {
      version: 1 as const,
      minerKeyHex: Buffer.from(chain.miner.privateKey!).toString('hex'),
      blocks: chain.blockHexes,
      mempool: chain.mempoolHexes(),
    }
    const data = JSON.stringify(state)
    saving = saving
      .then(() => writePrivateFile(statePath, data))
      .catch((err: unknown) => log.error('saving devchain failed: %e', err))
    return saving
  }

  async function load(): Promise<void> {
    const raw = statePath != null ? await readIfExists(statePath) : undefined
    if (raw == null) {
      chain.genesis()
      return
    }
    const parsed = PersistedState.safeParse(JSON.parse(raw.toString('utf8')))
    if (!parsed.success)
      throw new PaymentError(
        'ERR_DEVCHAIN',
        `devchain state ${statePath} is corrupt; move it away to start a new chain`,
      )
    chain = new DevChain(Buffer.from(parsed.data.minerKeyHex, 'hex'))
    for (const b of parsed.data.blocks) chain.replayBlock(b.time, b.txs)
    for (const hex of parsed.data.mempool) {
      try {
        chain.accept(hex)
      } catch {
        // a persisted mempool transaction that no longer fits is simply gone, as in a node's mempool
      }
    }
  }

  function scriptOf(address: string): string {
    try {
      return Buffer.from(addressToScript(address, 'regtest')).toString('hex')
    } catch (err) {
      throw new HttpError(400, err instanceof Error ? err.message : 'Invalid Bitcoin address')
    }
  }

  function mine(blocks = 1, address?: string): string[] {
    const hashes = chain.mine(blocks, address != null ? Buffer.from(scriptOf(address), 'hex') : undefined)
    log('mined %d block(s), height %d', blocks, chain.height)
    return hashes
  }

  async function readBody(req: IncomingMessage): Promise<string> {
    let body = ''
    for await (const chunk of req) {
      body += String(chunk)
      if (body.length > 4_000_000) throw new HttpError(413, 'body too large')
    }
    return body
  }

  function parseJson<T>(schema: z.ZodType<T>, body: string): T {
    let raw: unknown
    try {
      raw = body === '' ? {} : JSON.parse(body)
    } catch {
      throw new HttpError(400, 'invalid JSON body')
    }
    const r = schema.safeParse(raw)
    if (!r.success)
      throw new HttpError(400, `invalid request: ${r.error.issues.map((i) => i.message).join('; ')}`)
    return r.data
  }

  async function route(req: IncomingMessage): Promise<{ status?: number; body: unknown }> {
    const path = new URL(req.url ?? '/', 'http://x').pathname
    const method = req.method ?? 'GET'
    let m: RegExpExecArray | null
    if (method === 'GET') {
      if (path === '/blocks/tip/height') return { body: String(chain.height) }
      if (path === '/blocks/tip/hash') return { body: chain.tip.hash }
      if ((m = /^\/block-height\/(\d+)$/.exec(path))) {
        const b = chain.blockAt(Number(m[1]))
        if (b == null) throw new HttpError(404, 'Block not found')
        return { body: b.hash }
      }
      if ((m = /^\/block\/([0-9a-f]{64})$/.exec(path))) {
        const b = chain.blockByHash(m[1]!)
        if (b == null) throw new HttpError(404, 'Block not found')
        return {
          body: {
            id: b.hash,
            height: b.height,
            timestamp: b.time,
            tx_count: b.txids.length,
            previousblockhash: b.prevHash,
          },
        }
      }
      if ((m = /^\/address\/([^/]+)\/utxo$/.exec(path))) {
        const utxos = chain.utxosForScript(scriptOf(decodeURIComponent(m[1]!)))
        return {
          body: utxos.map((u) => ({
            txid: u.txid,
            vout: u.vout,
            status: statusJson(u.block),
            value: Number(u.value),
          })),
        }
      }
      if ((m = /^\/address\/([^/]+)\/txs(?:\/(mempool|chain)(?:\/([0-9a-f]{64}))?)?$/.exec(path))) {
        const all = chain.txsForScript(scriptOf(decodeURIComponent(m[1]!)))
        const mempool = all.filter((t) => chain.state(t.txid).where === 'mempool')
        let confirmed = all.filter((t) => chain.state(t.txid).where === 'block')
        if (m[2] === 'mempool') return { body: mempool.slice(0, 50).map((t) => txJson(chain, t)) }
        if (m[3] != null) {
          const at = confirmed.findIndex((t) => t.txid === m![3])
          confirmed = at < 0 ? [] : confirmed.slice(at + 1)
        }
        const page = [...(m[2] == null ? mempool.slice(0, 50) : []), ...confirmed.slice(0, 25)]
        return { body: page.map((t) => txJson(chain, t)) }
      }
      if ((m = /^\/tx\/([0-9a-f]{64})(?:\/(status|hex|outspend\/(\d+)))?$/.exec(path))) {
        const t = chain.get(m[1]!)
        if (m[3] != null) {
          const spender = chain.outspend(m[1]!, Number(m[3]))
          if (spender == null) return { body: { spent: false } }
          const s = chain.state(spender)
          return {
            body: {
              spent: true,
              txid: spender,
              status: statusJson(s.where === 'block' ? s.block : undefined),
            },
          }
        }
        if (t == null) throw new HttpError(404, 'Transaction not found')
        if (m[2] === 'hex') return { body: t.tx.toHex() }
        if (m[2] === 'status') return { body: txJson(chain, t).status }
        return { body: txJson(chain, t) }
      }
      if (path === '/fee-estimates') {
        const rate = opts.feeRateSatVb ?? 2
        const body: Record<string, number> = {}
        for (const target of [1, 2, 3, 6, 12, 25, 144, 504, 1008])
          body[String(target)] = target <= 2 ? rate : Math.max(1, rate / 2)
        return { body }
      }
      if (path === '/admin/info')
        return { body: { height: chain.height, tip: chain.tip.hash, mempool: chain.mempoolSize() } }
    }
    if (method === 'POST') {
      const body = await readBody(req)
      if (path === '/tx') {
        try {
          const txid = chain.accept(body.trim())
          await save()
          return { body: txid }
        } catch (err) {
          if (err instanceof RejectError) {
            throw new HttpError(
              400,
              `sendrawtransaction RPC error: {"code":-26,"message":${JSON.stringify(err.reason)}}`,
            )
          }
          throw err
        }
      }
      if (path === '/admin/mine') {
        const b = parseJson(MineBody, body)
        const hashes = mine(b.blocks, b.address)
        await save()
        return { body: { hashes, height: chain.height } }
      }
      if (path === '/admin/faucet') {
        const b = parseJson(FaucetBody, body)
        const txid = chain.faucet(Buffer.from(scriptOf(b.address), 'hex'), BigInt(b.sats))
        if (b.mine) chain.mine(1)
        await save()
        return { body: { txid, height: chain.height } }
      }
      if (path === '/admin/reorg') {
        const b = parseJson(ReorgBody, body)
        const r = chain.reorg(b.depth, {
          ...(b.drop != null ? { drop: b.drop } : {}),
          mineAfter: b.mineAfter ?? 0,
        })
        await save()
        return { body: { ...r, height: chain.height } }
      }
    }
    throw new HttpError(404, 'Not found')
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const { status, body } = await route(req)
      const text = typeof body === 'string' ? body : JSON.stringify(body)
      res.writeHead(status ?? 200, {
        'content-type': typeof body === 'string' ? 'text/plain' : 'application/json',
      })
      res.end(text)
    } catch (err) {
      const status = err instanceof HttpError ? err.status : err instanceof RejectError ? 400 : 500
      if (status === 500) log.error('devchain request failed: %e', err)
      res.writeHead(status, { 'content-type': 'text/plain' })
      res.end(err instanceof Error ? err.message : 'error')
    }
  }

  return {
    get url() {
      return url
    },
    get chain() {
      return chain
    },
    async start() {
      await load()
      server = createServer((req, res) => void handle(req, res))
      await new Promise<void>((resolve, reject) => {
        server!.once('error', reject)
        server!.listen(opts.port ?? 0, '127.0.0.1', () => resolve())
      })
      url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
      if (opts.mineIntervalMs != null && opts.mineIntervalMs > 0) {
        interval = setInterval(() => {
          if (chain.mempoolSize() === 0) return
          mine(1)
          void save()
        }, opts.mineIntervalMs)
      }
      await save()
      log('devchain at %s, height %d', url, chain.height)
    },
    async stop() {
      if (interval != null) clearInterval(interval)
      interval = undefined
      const s = server
      server = undefined
      if (s != null) {
        s.closeAllConnections()
        await new Promise<void>((resolve) => s.close(() => resolve()))
      }
      await saving
    },
    async mine(blocks = 1, address?: string) {
      const hashes = mine(blocks, address)
      await save()
      return hashes
    },
    async faucet(address: string, sats: number) {
      const txid = chain.faucet(Buffer.from(scriptOf(address), 'hex'), BigInt(sats))
      await save()
      return txid
    },
    async reorg(depth, o = {}) {
      const r = chain.reorg(depth, o)
      await save()
      return r
    },
  }
}
