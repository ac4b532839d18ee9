import * as ecc from '@bitcoinerlab/secp256k1'
import { Block, Psbt, Transaction, crypto as bcrypto, payments, script as bscript } from 'bitcoinjs-lib'
import { ECPairFactory, type ECPairInterface } from 'ecpair'
import { networkParams } from '../networks.js'

const ECPair = ECPairFactory(ecc)
const REGTEST = networkParams('regtest').bitcoinjs

/** Regtest never halves here: every block pays this subsidy (plus fees) to the devchain's miner key. */
export const BLOCK_SUBSIDY_SATS = 50n * 100_000_000n
const MAX_MONEY = 21_000_000n * 100_000_000n
const ZERO_HASH = new Uint8Array(32)
const SEQUENCE_FINAL_MINUS_ONE = 0xfffffffe

/** Why the devchain refused a transaction, with Bitcoin Core's reject reasons where one exists. */
export class RejectError extends Error {
  constructor(readonly reason: string) {
    super(reason)
  }
}

export interface Coin {
  value: bigint
  script: Uint8Array
}

export interface StoredTx {
  tx: Transaction
  txid: string
  /** the outputs this transaction spends, in input order (empty for coinbase) */
  prevouts: Coin[]
  fee: bigint
  coinbase: boolean
}

export interface BlockRecord {
  hash: string
  height: number
  time: number
  prevHash: string
  txids: string[]
  /** the outputs this block spent, so a reorg can restore them */
  undo: Array<[string, Coin]>
}

export type TxState = { where: 'mempool' } | { where: 'block'; block: BlockRecord } | { where: 'unknown' }

const outpoint = (txid: string, vout: number) => `${txid}:${vout}`
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')
const txidOfInput = (hash: Uint8Array) => hex(Uint8Array.from(hash).reverse())

/** Whether a transaction signals BIP125 replaceability (any input sequence below 0xfffffffe). */
export function signalsRbf(tx: Transaction): boolean {
  return tx.ins.some((i) => i.sequence < SEQUENCE_FINAL_MINUS_ONE)
}

/**
 * An in-memory regtest chain: blocks, a UTXO set and a mempool. It validates every transaction the way
 * a node's mempool does for P2WPKH spends (inputs exist and are unspent, each witness signature verifies
 * against the spent output, outputs do not exceed inputs) and replaces by fee only when BIP125 allows.
 * Coinbase maturity is not enforced, so the faucet can spend a block reward at once.
 */
export class DevChain {
  readonly blocks: BlockRecord[] = []
  readonly miner: ECPairInterface
  readonly minerScript: Uint8Array
  private readonly txs = new Map<string, StoredTx>()
  private readonly confirmedIn = new Map<string, BlockRecord>()
  private readonly utxos = new Map<string, Coin>()
  private readonly spentBy = new Map<string, string>()
  private mempool = new Map<string, StoredTx>()
  private readonly mempoolSpends = new Map<string, string>()
  private readonly byScript = new Map<string, Set<string>>()
  private readonly firstSeen = new Map<string, number>()
  private extraNonce = 0
  /** blocks as [coinbase hex, ...tx hex] with their time, for persistence */
  readonly blockHexes: Array<{ time: number; txs: string[] }> = []

  constructor(minerPrivateKey?: Uint8Array) {
    this.miner =
      minerPrivateKey != null
        ? ECPair.fromPrivateKey(minerPrivateKey, { network: REGTEST })
        : ECPair.makeRandom({ network: REGTEST })
    this.minerScript = payments.p2wpkh({ pubkey: this.miner.publicKey, network: REGTEST }).output!
  }

  get height(): number {
    return this.blocks.length - 1
  }

  get tip(): BlockRecord {
    return this.blocks[this.blocks.length - 1]!
  }

  /** Validates and adds a transaction to the mempool; returns its txid or throws RejectError. */
  accept(txHex: string, now = Date.now()): string {
    let tx: Transaction
    try {
      tx = Transaction.fromHex(txHex)
    } catch {
      throw new RejectError('TX decode failed')
    }
    const txid = tx.getId()
    if (this.mempool.has(txid) || this.confirmedIn.has(txid)) throw new RejectError('txn-already-known')
    if (tx.isCoinbase()) throw new RejectError('coinbase')
    if (tx.ins.length === 0) throw new RejectError('bad-txns-vin-empty')
    if (tx.outs.length === 0) throw new RejectError('bad-txns-vout-empty')
    const seen = new Set<string>()
    const prevouts: Coin[] = []
    const conflicts = new Set<string>()
    for (const input of tx.ins) {
      const key = outpoint(txidOfInput(input.hash), input.index)
      if (seen.has(key)) throw new RejectError('bad-txns-inputs-duplicate')
      seen.add(key)
      const coin = this.utxos.get(key) ?? this.mempoolCoin(key)
      if (coin == null) throw new RejectError('bad-txns-inputs-missingorspent')
      const spender = this.mempoolSpends.get(key)
      if (spender != null) conflicts.add(spender)
      prevouts.push(coin)
    }
    let outSum = 0n
    for (const out of tx.outs) {
      if (out.value < 0n || out.value > MAX_MONEY) throw new RejectError('bad-txns-vout-toolarge')
      outSum += out.value
    }
    const inSum = prevouts.reduce((a, c) => a + c.value, 0n)
    if (outSum > inSum) throw new RejectError('bad-txns-in-belowout')
    tx.ins.forEach((_, i) => this.verifyInput(tx, i, prevouts[i]!))
    const fee = inSum - outSum
    if (conflicts.size > 0) this.replace(tx, fee, conflicts)
    const stored: StoredTx = { tx, txid, prevouts, fee, coinbase: false }
    this.mempool.set(txid, stored)
    for (const input of tx.ins) this.mempoolSpends.set(outpoint(txidOfInput(input.hash), input.index), txid)
    this.index(stored)
    if (!this.firstSeen.has(txid)) this.firstSeen.set(txid, now)
    return txid
  }

  /** BIP125: every conflict must signal and the replacement must pay more than everything it evicts. */
  private replace(tx: Transaction, fee: bigint, conflicts: Set<string>): void {
    const evicted = new Set<string>()
    for (const c of conflicts) {
      if (!signalsRbf(this.mempool.get(c)!.tx)) throw new RejectError('txn-mempool-conflict')
      for (const d of this.withDescendants(c)) evicted.add(d)
    }
    const evictedFees = [...evicted].reduce((a, id) => a + this.mempool.get(id)!.fee, 0n)
    if (fee <= evictedFees) throw new RejectError('insufficient fee')
    void tx
    for (const id of evicted) this.removeFromMempool(id)
  }

  private withDescendants(txid: string): string[] {
    const out = [txid]
    for (let i = 0; i < out.length; i++) {
      const t = this.mempool.get(out[i]!)!
      t.tx.outs.forEach((_, vout) => {
        const child = this.mempoolSpends.get(outpoint(t.txid, vout))
        if (child != null && !out.includes(child)) out.push(child)
      })
    }
    return out
  }

  private removeFromMempool(txid: string): void {
    const t = this.mempool.get(txid)
    if (t == null) return
    this.mempool.delete(txid)
    for (const input of t.tx.ins) {
      const key = outpoint(txidOfInput(input.hash), input.index)
      if (this.mempoolSpends.get(key) === txid) this.mempoolSpends.delete(key)
    }
  }

  private mempoolCoin(key: string): Coin | undefined {
    const [txid, vout] = key.split(':') as [string, string]
    const parent = this.mempool.get(txid)
    const out = parent?.tx.outs[Number(vout)]
    return out != null ? { value: out.value, script: out.script } : undefined
  }

  /** Checks a P2WPKH spend: witness [sig, pubkey], pubkey hash matches, BIP143 signature verifies. */
  private verifyInput(tx: Transaction, index: number, coin: Coin): void {
    const s = coin.script
    if (!(s.length === 22 && s[0] === 0x00 && s[1] === 0x14)) {
      throw new RejectError('non-mandatory-script-verify-flag (devchain spends P2WPKH outputs only)')
    }
    const input = tx.ins[index]!
    if (input.script.length !== 0)
      throw new RejectError('non-mandatory-script-verify-flag (Witness requires empty scriptSig)')
    if (input.witness.length !== 2)
      throw new RejectError('mandatory-script-verify-flag-failed (Witness program mismatch)')
    const [sigBytes, pubkey] = input.witness as [Uint8Array, Uint8Array]
    const program = s.subarray(2)
    if (pubkey.length !== 33 || hex(bcrypto.hash160(pubkey)) !== hex(program)) {
      throw new RejectError('mandatory-script-verify-flag-failed (Witness program hash mismatch)')
    }
    let decoded
    try {
      decoded = bscript.signature.decode(sigBytes)
    } catch {
      throw new RejectError('mandatory-script-verify-flag-failed (Non-canonical DER signature)')
    }
    const scriptCode = payments.p2pkh({ hash: program }).output!
    const sighash = tx.hashForWitnessV0(index, scriptCode, coin.value, decoded.hashType)
    if (!ecc.verify(sighash, pubkey, decoded.signature)) {
      throw new RejectError(
        'mandatory-script-verify-flag-failed (Signature must be zero for failed CHECK(MULTI)SIG operation)',
      )
    }
  }

  private index(t: StoredTx): void {
    this.txs.set(t.txid, t)
    const scripts = [...t.prevouts.map((c) => c.script), ...t.tx.outs.map((o) => o.script)]
    for (const s of scripts) {
      const k = hex(s)
      let set = this.byScript.get(k)
      if (set == null) this.byScript.set(k, (set = new Set()))
      set.add(t.txid)
    }
  }

  /** Mines `count` blocks with the whole mempool in the first; returns the new block hashes. */
  mine(count = 1, payoutScript: Uint8Array = this.minerScript, now = Date.now()): string[] {
    const hashes: string[] = []
    for (let i = 0; i < count; i++) {
      const txs = [...this.mempool.values()]
      const fees = txs.reduce((a, t) => a + t.fee, 0n)
      const height = this.height + 1
      const coinbase = new Transaction()
      coinbase.version = 2
      coinbase.addInput(
        ZERO_HASH,
        0xffffffff,
        0xffffffff,
        bscript.compile([bscript.number.encode(height), bscript.number.encode(++this.extraNonce)]),
      )
      coinbase.addOutput(payoutScript, BLOCK_SUBSIDY_SATS + fees)
      const time = Math.max(Math.floor(now / 1000), (this.blocks.at(-1)?.time ?? 0) + 1)
      hashes.push(this.connect(coinbase, txs, time).hash)
    }
    return hashes
  }

  private connect(coinbase: Transaction, txs: StoredTx[], time: number): BlockRecord {
    const prev = this.blocks.at(-1)
    const block = new Block()
    block.version = 0x20000000
    block.prevHash = prev != null ? Uint8Array.from(Buffer.from(prev.hash, 'hex')).reverse() : ZERO_HASH
    block.merkleRoot = Block.calculateMerkleRoot([coinbase, ...txs.map((t) => t.tx)])
    block.timestamp = time
    block.bits = 0x207fffff
    block.nonce = 0
    const record: BlockRecord = {
      hash: block.getId(),
      height: this.blocks.length,
      time,
      prevHash: prev?.hash ?? hex(ZERO_HASH),
      txids: [],
      undo: [],
    }
    const cb: StoredTx = { tx: coinbase, txid: coinbase.getId(), prevouts: [], fee: 0n, coinbase: true }
    for (const t of [cb, ...txs]) {
      for (const input of t.coinbase ? [] : t.tx.ins) {
        const key = outpoint(txidOfInput(input.hash), input.index)
        record.undo.push([key, this.utxos.get(key)!])
        this.utxos.delete(key)
        this.spentBy.set(key, t.txid)
      }
      t.tx.outs.forEach((o, vout) =>
        this.utxos.set(outpoint(t.txid, vout), { value: o.value, script: o.script }),
      )
      this.removeFromMempool(t.txid)
      this.confirmedIn.set(t.txid, record)
      record.txids.push(t.txid)
      if (!this.txs.has(t.txid)) this.index(t)
      if (!this.firstSeen.has(t.txid)) this.firstSeen.set(t.txid, time * 1000)
    }
    this.blocks.push(record)
    this.blockHexes.push({ time, txs: [coinbase.toHex(), ...txs.map((t) => t.tx.toHex())] })
    return record
  }

  /** Replays a persisted block: its transactions are validated again, then connected with its coinbase. */
  replayBlock(time: number, txHexes: string[]): void {
    const [coinbaseHex, ...rest] = txHexes
    const coinbase = Transaction.fromHex(coinbaseHex!)
    const txids = rest.map((h) => this.accept(h, time * 1000))
    this.connect(
      coinbase,
      txids.map((id) => this.mempool.get(id)!),
      time,
    )
    this.extraNonce = Math.max(this.extraNonce, this.blocks.length)
  }

  /**
   * Disconnects the last `depth` blocks (like `invalidateblock`). Their transactions go back to the
   * mempool unless listed in `drop` (or drop = 'all'), as when a competing chain did not include them;
   * then `mineAfter` new blocks are mined. Transactions that became invalid leave the mempool.
   */
  reorg(
    depth: number,
    opts: { drop?: string[] | 'all'; mineAfter?: number } = {},
  ): { disconnected: string[] } {
    if (!Number.isInteger(depth) || depth < 1 || depth >= this.blocks.length) {
      throw new RejectError(`reorg depth must be between 1 and ${this.blocks.length - 1}`)
    }
    const disconnected: string[] = []
    const returning: StoredTx[] = []
    for (let i = 0; i < depth; i++) {
      const block = this.blocks.pop()!
      this.blockHexes.pop()
      disconnected.push(block.hash)
      const blockTxs = block.txids.map((id) => this.txs.get(id)!)
      for (const t of [...blockTxs].reverse()) {
        t.tx.outs.forEach((_, vout) => this.utxos.delete(outpoint(t.txid, vout)))
        this.confirmedIn.delete(t.txid)
      }
      for (const [key, coin] of block.undo) {
        this.utxos.set(key, coin)
        this.spentBy.delete(key)
      }
      returning.unshift(...blockTxs.filter((t) => !t.coinbase))
    }
    const drop = opts.drop ?? []
    const candidates = [...returning, ...this.mempool.values()].filter(
      (t) => drop !== 'all' || !returning.includes(t),
    )
    this.mempool = new Map()
    this.mempoolSpends.clear()
    for (const t of candidates) {
      if (Array.isArray(drop) && drop.includes(t.txid)) continue
      try {
        this.accept(t.tx.toHex())
      } catch {
        // it spent a coinbase or a dropped transaction's output: gone with the old branch
      }
    }
    if ((opts.mineAfter ?? 0) > 0) this.mine(opts.mineAfter)
    return { disconnected }
  }

  /** Pays `sats` to an output script from the miner's coins (mining rewards first when short). */
  faucet(script: Uint8Array, sats: bigint, feeRateSatVb = 2n): string {
    if (sats <= 0n || sats > 1000n * 100_000_000n)
      throw new RejectError('faucet amount must be 1 sat to 1000 BTC')
    const minerHex = hex(this.minerScript)
    for (let attempt = 0; attempt < 25; attempt++) {
      const coins = this.spendableBy(minerHex)
      const picked: Array<{ txid: string; vout: number; coin: Coin }> = []
      let total = 0n
      for (const c of coins) {
        picked.push(c)
        total += c.coin.value
        const fee = feeRateSatVb * BigInt(11 + 68 * picked.length + 31 * 2)
        if (total >= sats + fee) {
          const psbt = new Psbt({ network: REGTEST })
          for (const p of picked) {
            psbt.addInput({
              hash: p.txid,
              index: p.vout,
              sequence: 0xfffffffd,
              witnessUtxo: { script: p.coin.script, value: p.coin.value },
            })
          }
          psbt.addOutput({ script, value: sats })
          const change = total - sats - fee
          if (change > 294n) psbt.addOutput({ script: this.minerScript, value: change })
          psbt.signAllInputs(this.miner)
          psbt.finalizeAllInputs()
          return this.accept(psbt.extractTransaction().toHex())
        }
      }
      this.mine(1)
    }
    throw new RejectError('faucet could not gather enough coins')
  }

  /** Confirmed and mempool outputs paying `scriptHex` that nothing in the mempool spends yet. */
  private spendableBy(scriptHex: string): Array<{ txid: string; vout: number; coin: Coin }> {
    const out: Array<{ txid: string; vout: number; coin: Coin }> = []
    for (const txid of this.byScript.get(scriptHex) ?? []) {
      const t = this.txs.get(txid)!
      if (!this.mempool.has(txid) && !this.confirmedIn.has(txid)) continue
      t.tx.outs.forEach((o, vout) => {
        const key = outpoint(txid, vout)
        if (hex(o.script) !== scriptHex || this.mempoolSpends.has(key)) return
        const coin =
          this.utxos.get(key) ?? (this.mempool.has(txid) ? { value: o.value, script: o.script } : undefined)
        if (coin != null) out.push({ txid, vout, coin })
      })
    }
    return out.sort((a, b) => (b.coin.value > a.coin.value ? 1 : b.coin.value < a.coin.value ? -1 : 0))
  }

  // ---- queries (for the Esplora API) ----

  state(txid: string): TxState {
    if (this.mempool.has(txid)) return { where: 'mempool' }
    const block = this.confirmedIn.get(txid)
    return block != null ? { where: 'block', block } : { where: 'unknown' }
  }

  /** A transaction currently in the mempool or the active chain. */
  get(txid: string): StoredTx | undefined {
    return this.state(txid).where === 'unknown' ? undefined : this.txs.get(txid)
  }

  /** Live transactions touching a script: mempool ones first (newest first), then by height descending. */
  txsForScript(scriptHex: string): StoredTx[] {
    const ids = [...(this.byScript.get(scriptHex) ?? [])].filter((id) => this.state(id).where !== 'unknown')
    const rank = (id: string) => {
      const b = this.confirmedIn.get(id)
      return b == null ? Number.MAX_SAFE_INTEGER - (this.firstSeen.get(id) ?? 0) / 1e15 : b.height
    }
    return ids
      .sort((a, b) => rank(b) - rank(a) || (this.firstSeen.get(b) ?? 0) - (this.firstSeen.get(a) ?? 0))
      .map((id) => this.txs.get(id)!)
  }

  /** Unspent outputs of a script, confirmed or in the mempool, not spent by a mempool transaction. */
  utxosForScript(
    scriptHex: string,
  ): Array<{ txid: string; vout: number; value: bigint; block?: BlockRecord }> {
    const out: Array<{ txid: string; vout: number; value: bigint; block?: BlockRecord }> = []
    for (const t of this.txsForScript(scriptHex)) {
      const block = this.confirmedIn.get(t.txid)
      t.tx.outs.forEach((o, vout) => {
        const key = outpoint(t.txid, vout)
        if (hex(o.script) !== scriptHex || this.mempoolSpends.has(key)) return
        if (block != null && !this.utxos.has(key)) return
        out.push({ txid: t.txid, vout, value: o.value, ...(block != null ? { block } : {}) })
      })
    }
    return out
  }

  /** Who spends an output: a confirmed or a mempool transaction. */
  outspend(txid: string, vout: number): string | undefined {
    const key = outpoint(txid, vout)
    return this.mempoolSpends.get(key) ?? this.spentBy.get(key)
  }

  mempoolHexes(): string[] {
    return [...this.mempool.values()].map((t) => t.tx.toHex())
  }

  mempoolSize(): number {
    return this.mempool.size
  }

  blockAt(height: number): BlockRecord | undefined {
    return this.blocks[height]
  }

  blockByHash(hash: string): BlockRecord | undefined {
    return this.blocks.find((b) => b.hash === hash)
  }

  /** Mines the genesis block (paying an unspendable script), once. */
  genesis(now = Date.now()): void {
    if (this.blocks.length > 0) return
    this.mine(1, bscript.compile([bscript.OPS.OP_RETURN]), now)
  }
}
