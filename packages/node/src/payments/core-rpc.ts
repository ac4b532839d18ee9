import { readFile } from 'node:fs/promises'
import { Transaction } from 'bitcoinjs-lib'
import { z } from 'zod'
import { btcNumberToSats } from './amounts.js'
import type { ChainBackend, ChainTx, ChainUtxo, TxStatus } from './backend.js'
import { withDescriptorChecksum } from './descriptor-checksum.js'
import { PaymentError } from './errors.js'
import { scriptToAddress, type BitcoinNetworkName } from './networks.js'

export interface CoreRpcBackendOptions {
  /** e.g. http://user:pass@127.0.0.1:18443 (credentials may also come from a cookie file) */
  url: string
  network: BitcoinNetworkName
  /** path of bitcoind's .cookie file, used when the URL carries no credentials */
  cookieFile?: string
  /** the watch-only descriptor wallet rpib keeps in bitcoind (created on first use) */
  walletName?: string
  /** rescan from this unix time when importing addresses ('now' = no rescan; use 0 after a restore) */
  rescanFrom?: 'now' | number
  /** sat/vB when estimatesmartfee has no estimate yet (always the case on a fresh regtest) */
  fallbackFeeRate?: number
  timeoutMs?: number
}

const RpcResponse = z.object({
  result: z.unknown().optional(),
  error: z.object({ code: z.number(), message: z.string() }).nullable().optional(),
})

class RpcError extends Error {
  constructor(
    readonly rpcCode: number,
    message: string,
  ) {
    super(message)
  }
}

const GetTransaction = z.object({
  txid: z.string(),
  hex: z.string(),
  confirmations: z.number().int(),
  blockhash: z.string().optional(),
  blockheight: z.number().int().optional(),
  blocktime: z.number().int().optional(),
  replaced_by_txid: z.string().optional(),
})
const RawTransaction = z.object({
  txid: z.string(),
  hex: z.string(),
  confirmations: z.number().int().optional(),
  blockhash: z.string().optional(),
  blocktime: z.number().int().optional(),
})
const ReceivedByAddress = z.array(z.object({ address: z.string(), txids: z.array(z.string()) }))
const ListUnspent = z.array(
  z.object({ txid: z.string(), vout: z.number().int(), amount: z.number(), confirmations: z.number().int() }),
)
const EstimateSmartFee = z.object({ feerate: z.number().optional(), errors: z.array(z.string()).optional() })
const ImportResult = z.array(
  z.object({ success: z.boolean(), error: z.object({ message: z.string() }).optional() }),
)

// Core's error codes (src/rpc/protocol.h)
const RPC_INVALID_ADDRESS_OR_KEY = -5
const RPC_WALLET_NOT_FOUND = -18
const RPC_WALLET_ALREADY_LOADED = -35

/**
 * A ChainBackend over Bitcoin Core's JSON-RPC. Core has no address index, so addresses are imported
 * as `addr()` descriptors into a watch-only descriptor wallet and queried through the wallet RPCs.
 */
export function createCoreRpcBackend(opts: CoreRpcBackendOptions): ChainBackend {
  const parsed = new URL(opts.url)
  const walletName = opts.walletName ?? 'rpib-watch'
  const timeoutMs = opts.timeoutMs ?? 30_000
  let auth: string | undefined =
    parsed.username !== ''
      ? Buffer.from(`${decodeURIComponent(parsed.username)}:${decodeURIComponent(parsed.password)}`).toString(
          'base64',
        )
      : undefined
  parsed.username = ''
  parsed.password = ''
  const base = parsed.toString().replace(/\/+$/, '')
  const imported = new Set<string>()
  let walletReady: Promise<void> | undefined
  let id = 0

  async function call<T>(
    method: string,
    params: unknown[],
    schema: z.ZodType<T>,
    o: { wallet?: boolean; signal?: AbortSignal } = {},
  ): Promise<T> {
    if (auth == null && opts.cookieFile != null)
      auth = Buffer.from((await readFile(opts.cookieFile, 'utf8')).trim()).toString('base64')
    const timeout = AbortSignal.timeout(timeoutMs)
    let res: Response
    try {
      res = await fetch(o.wallet === true ? `${base}/wallet/${encodeURIComponent(walletName)}` : base, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          ...(auth != null ? { authorization: `Basic ${auth}` } : {}),
        },
        body: JSON.stringify({ jsonrpc: '1.0', id: ++id, method, params }),
        signal: o.signal != null ? AbortSignal.any([o.signal, timeout]) : timeout,
      })
    } catch (err) {
      if (o.signal?.aborted === true) throw err
      throw new PaymentError(
        'ERR_BACKEND_UNREACHABLE',
        `Bitcoin Core RPC at ${base} is unreachable (${(err as Error).message}); check --rpc-url and that bitcoind runs`,
        { cause: err },
      )
    }
    if (res.status === 401 || res.status === 403) {
      throw new PaymentError(
        'ERR_BACKEND_UNREACHABLE',
        `Bitcoin Core RPC at ${base} refused the credentials; put user:password in --rpc-url or use the cookie file`,
      )
    }
    const text = await res.text()
    let body: z.infer<typeof RpcResponse>
    try {
      body = RpcResponse.parse(JSON.parse(text))
    } catch {
      throw new PaymentError(
        'ERR_BACKEND_RESPONSE',
        `Bitcoin Core ${method} answered HTTP ${res.status} with a non JSON-RPC body`,
      )
    }
    if (body.error != null) throw new RpcError(body.error.code, body.error.message)
    const result = schema.safeParse(body.result)
    if (!result.success)
      throw new PaymentError('ERR_BACKEND_RESPONSE', `Bitcoin Core ${method} returned an unexpected shape`)
    return result.data
  }

  function ensureWallet(signal?: AbortSignal): Promise<void> {
    walletReady ??= (async () => {
      const loaded = await call('listwallets', [], z.array(z.string()), {
        ...(signal != null ? { signal } : {}),
      })
      if (loaded.includes(walletName)) return
      try {
        await call('loadwallet', [walletName], z.unknown())
      } catch (err) {
        if (err instanceof RpcError && err.rpcCode === RPC_WALLET_ALREADY_LOADED) return
        if (!(err instanceof RpcError && err.rpcCode === RPC_WALLET_NOT_FOUND)) throw err
        // watch-only (no private keys), blank, descriptor wallet, loaded on bitcoind start
        await call('createwallet', [walletName, true, true, '', false, true, true], z.unknown())
      }
    })().catch((err: unknown) => {
      walletReady = undefined
      throw wrap(err, 'preparing the watch-only wallet')
    })
    return walletReady
  }

  function wrap(err: unknown, what: string): unknown {
    if (err instanceof RpcError)
      return new PaymentError(
        'ERR_BACKEND_RESPONSE',
        `Bitcoin Core refused ${what}: ${err.message} (code ${err.rpcCode})`,
      )
    return err
  }

  function toChainTx(hex: string, status: TxStatus): ChainTx {
    const tx = Transaction.fromHex(hex)
    return {
      txid: tx.getId(),
      inputs: tx.isCoinbase()
        ? []
        : tx.ins.map((i) => ({
            txid: Buffer.from(Uint8Array.from(i.hash).reverse()).toString('hex'),
            vout: i.index,
            sequence: i.sequence,
          })),
      outputs: tx.outs.map((o, vout) => {
        const address = scriptToAddress(o.script, opts.network)
        return {
          vout,
          scriptHex: Buffer.from(o.script).toString('hex'),
          valueSats: Number(o.value),
          ...(address != null ? { address } : {}),
        }
      }),
      status,
    }
  }

  async function blockHeightOf(hash: string, signal?: AbortSignal): Promise<number> {
    const h = await call('getblockheader', [hash, true], z.object({ height: z.number().int() }), {
      ...(signal != null ? { signal } : {}),
    })
    return h.height
  }

  async function inMempool(txid: string, signal?: AbortSignal): Promise<boolean> {
    try {
      await call('getmempoolentry', [txid], z.unknown(), { ...(signal != null ? { signal } : {}) })
      return true
    } catch (err) {
      if (err instanceof RpcError && err.rpcCode === RPC_INVALID_ADDRESS_OR_KEY) return false
      throw wrap(err, 'getmempoolentry')
    }
  }

  /** A wallet transaction that is in the mempool or the chain, else undefined (conflicted/evicted). */
  async function walletTx(txid: string, signal?: AbortSignal): Promise<ChainTx | undefined> {
    let t: z.infer<typeof GetTransaction>
    try {
      t = await call('gettransaction', [txid, true], GetTransaction, {
        wallet: true,
        ...(signal != null ? { signal } : {}),
      })
    } catch (err) {
      if (err instanceof RpcError && err.rpcCode === RPC_INVALID_ADDRESS_OR_KEY) return undefined
      throw wrap(err, 'gettransaction')
    }
    if (t.confirmations < 0 || t.replaced_by_txid != null) return undefined
    if (t.confirmations === 0)
      return (await inMempool(txid, signal)) ? toChainTx(t.hex, { confirmed: false }) : undefined
    const blockHeight = t.blockheight ?? (await blockHeightOf(t.blockhash!, signal))
    return toChainTx(t.hex, {
      confirmed: true,
      blockHeight,
      ...(t.blockhash != null ? { blockHash: t.blockhash } : {}),
      ...(t.blocktime != null ? { blockTime: t.blocktime } : {}),
    })
  }

  async function rawTx(txid: string, signal?: AbortSignal): Promise<ChainTx | undefined> {
    let r: z.infer<typeof RawTransaction>
    try {
      r = await call('getrawtransaction', [txid, true], RawTransaction, {
        ...(signal != null ? { signal } : {}),
      })
    } catch (err) {
      if (err instanceof RpcError && err.rpcCode === RPC_INVALID_ADDRESS_OR_KEY) return undefined
      throw wrap(err, 'getrawtransaction')
    }
    if (r.blockhash == null || (r.confirmations ?? 0) < 1) return toChainTx(r.hex, { confirmed: false })
    return toChainTx(r.hex, {
      confirmed: true,
      blockHeight: await blockHeightOf(r.blockhash, signal),
      blockHash: r.blockhash,
      ...(r.blocktime != null ? { blockTime: r.blocktime } : {}),
    })
  }

  const sig = (signal?: AbortSignal) => (signal != null ? { signal } : {})

  return {
    kind: 'core-rpc',
    async tipHeight(signal) {
      try {
        return await call('getblockcount', [], z.number().int().nonnegative(), sig(signal))
      } catch (err) {
        throw wrap(err, 'getblockcount')
      }
    },
    async tipHash(signal) {
      try {
        return await call('getbestblockhash', [], z.string().regex(/^[0-9a-f]{64}$/), sig(signal))
      } catch (err) {
        throw wrap(err, 'getbestblockhash')
      }
    },
    async watchAddresses(addresses, signal) {
      const fresh = [...new Set(addresses)].filter((a) => !imported.has(a))
      if (fresh.length === 0) return
      await ensureWallet(signal)
      try {
        const requests = fresh.map((a) => ({
          desc: withDescriptorChecksum(`addr(${a})`),
          timestamp: opts.rescanFrom ?? 'now',
          label: 'rpib',
        }))
        const results = await call('importdescriptors', [requests], ImportResult, {
          wallet: true,
          ...sig(signal),
        })
        results.forEach((r, i) => {
          if (!r.success)
            throw new PaymentError(
              'ERR_BACKEND_RESPONSE',
              `Bitcoin Core could not import ${fresh[i]}: ${r.error?.message ?? 'unknown error'}`,
            )
          imported.add(fresh[i]!)
        })
      } catch (err) {
        throw wrap(err, 'importdescriptors')
      }
    },
    async addressTransactions(address, signal) {
      await this.watchAddresses([address], signal)
      let rows: z.infer<typeof ReceivedByAddress>
      try {
        // minconf 0, include empty, include watch-only, only this address
        rows = await call('listreceivedbyaddress', [0, true, true, address], ReceivedByAddress, {
          wallet: true,
          ...sig(signal),
        })
      } catch (err) {
        throw wrap(err, 'listreceivedbyaddress')
      }
      const txids = rows.find((r) => r.address === address)?.txids ?? []
      const txs = (await Promise.all(txids.map((t) => walletTx(t, signal)))).filter(
        (t): t is ChainTx => t != null,
      )
      // newest first, mempool before confirmed, like Esplora
      return txs.sort((a, b) => (b.status.blockHeight ?? Infinity) - (a.status.blockHeight ?? Infinity))
    },
    async addressUtxos(address, signal) {
      await this.watchAddresses([address], signal)
      try {
        const [tip, utxos] = await Promise.all([
          this.tipHeight(signal),
          call('listunspent', [0, 9_999_999, [address], true], ListUnspent, { wallet: true, ...sig(signal) }),
        ])
        return utxos.map((u): ChainUtxo => ({
          txid: u.txid,
          vout: u.vout,
          valueSats: btcNumberToSats(u.amount),
          status:
            u.confirmations > 0
              ? { confirmed: true, blockHeight: tip - u.confirmations + 1 }
              : { confirmed: false },
        }))
      } catch (err) {
        throw wrap(err, 'listunspent')
      }
    },
    async transaction(txid, signal) {
      if (imported.size > 0) {
        await ensureWallet(signal)
        const t = await walletTx(txid, signal)
        if (t != null) return t
      }
      return rawTx(txid, signal)
    },
    async transactionHex(txid, signal) {
      try {
        return await call('getrawtransaction', [txid, false], z.string(), sig(signal))
      } catch (err) {
        if (err instanceof RpcError && err.rpcCode === RPC_INVALID_ADDRESS_OR_KEY) return undefined
        throw wrap(err, 'getrawtransaction')
      }
    },
    async outspend(txid, vout, signal) {
      try {
        // gettxout (with mempool) is null once the output is spent, in a block or in the mempool
        const out = await call('gettxout', [txid, vout, true], z.unknown(), sig(signal))
        return { spent: out == null }
      } catch (err) {
        throw wrap(err, 'gettxout')
      }
    },
    async feeRate(targetBlocks, signal) {
      try {
        const r = await call('estimatesmartfee', [targetBlocks], EstimateSmartFee, sig(signal))
        // BTC per kvB -> sat per vB
        if (r.feerate != null) return Math.max(1, Math.ceil((r.feerate * 100_000_000) / 1000))
        return opts.fallbackFeeRate ?? 1
      } catch (err) {
        throw wrap(err, 'estimatesmartfee')
      }
    },
    async broadcast(txHex, signal) {
      try {
        return await call('sendrawtransaction', [txHex], z.string(), sig(signal))
      } catch (err) {
        if (err instanceof RpcError)
          throw new PaymentError('ERR_TX_REJECTED', `transaction rejected: ${err.message}`)
        throw err
      }
    },
  }
}
