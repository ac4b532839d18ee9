import * as ecc from '@bitcoinerlab/secp256k1'
import type { BIP32Interface } from 'bip32'
import { Psbt } from 'bitcoinjs-lib'
import coinSelect from 'coinselect'
import { logger as makeLogger, type Logger } from '../log.js'
import { assertSats, DUST_SATS } from './amounts.js'
import { confirmations, type ChainBackend, type ChainTx, type ChainUtxo } from './backend.js'
import { PaymentError } from './errors.js'
import {
  accountFromMnemonic,
  accountPath,
  deriveAddress,
  generateMnemonic,
  parseAccountPub,
  toBip84Pub,
  validateMnemonic,
  type Chain,
} from './keys.js'
import { addressToScript, networkParams, type BitcoinNetworkName } from './networks.js'
import { decryptSecret, encryptSecret, type KdfParams } from './seed-crypto.js'
import {
  readWalletFile,
  sealedAssociatedData,
  writeWalletFile,
  walletPath,
  type WalletFile,
} from './wallet-file.js'

export const DEFAULT_GAP_LIMIT = 20
/** BIP125: below 0xfffffffe every spend can be fee-bumped. */
const RBF_SEQUENCE = 0xfffffffd
/** vbytes of a P2WPKH input beyond coinselect's 41-byte base (108-byte witness / 4). */
const P2WPKH_INPUT_EXTRA_VBYTES = 27
const MAX_ADDRESSES_PER_CHAIN = 10_000

interface SealedSeed {
  mnemonic: string
  bip39Passphrase: string
}

export interface CreateWalletOptions {
  home: string
  network: BitcoinNetworkName
  /** encrypts the seed at rest */
  passphrase: string
  /** restore from this phrase; a new 24-word phrase is generated when absent */
  mnemonic?: string
  /** the optional BIP39 "25th word" */
  bip39Passphrase?: string
  gapLimit?: number
  kdf?: KdfParams
}

/** Creates (or restores) an HD wallet; returns the mnemonic so the user can write it down once. */
export async function createWallet(
  opts: CreateWalletOptions,
): Promise<{ mnemonic: string; file: WalletFile }> {
  if ((await readWalletFile(opts.home)) != null) {
    throw new PaymentError(
      'ERR_WALLET_EXISTS',
      `a wallet already exists in ${walletPath(opts.home)}; move it away first`,
    )
  }
  if (opts.passphrase.length < 8) {
    throw new PaymentError('ERR_WALLET_PASSPHRASE', 'choose a wallet passphrase of at least 8 characters')
  }
  const mnemonic = opts.mnemonic ?? generateMnemonic(24)
  const bip39Passphrase = opts.bip39Passphrase ?? ''
  const { account, fingerprint } = accountFromMnemonic(mnemonic, opts.network, bip39Passphrase)
  const meta = {
    version: 1 as const,
    network: opts.network,
    kind: 'hd' as const,
    accountPub: toBip84Pub(account, opts.network),
    accountPath: accountPath(opts.network),
    masterFingerprint: Buffer.from(fingerprint).toString('hex'),
    gapLimit: opts.gapLimit ?? DEFAULT_GAP_LIMIT,
    nextReceiveIndex: 0,
  }
  const sealed: SealedSeed = { mnemonic: validateMnemonic(mnemonic), bip39Passphrase }
  const file: WalletFile = {
    ...meta,
    sealedSeed: await encryptSecret(
      JSON.stringify(sealed),
      opts.passphrase,
      sealedAssociatedData(meta),
      opts.kdf,
    ),
  }
  await writeWalletFile(opts.home, file)
  return { mnemonic: sealed.mnemonic, file }
}

/** A watch-only wallet from an account public key (zpub/vpub/xpub/tpub): earnings go to a cold wallet. */
export async function createWatchOnlyWallet(opts: {
  home: string
  network: BitcoinNetworkName
  accountPub: string
  masterFingerprint?: string
  gapLimit?: number
}): Promise<WalletFile> {
  if ((await readWalletFile(opts.home)) != null) {
    throw new PaymentError(
      'ERR_WALLET_EXISTS',
      `a wallet already exists in ${walletPath(opts.home)}; move it away first`,
    )
  }
  const node = parseAccountPub(opts.accountPub, opts.network)
  const file: WalletFile = {
    version: 1,
    network: opts.network,
    kind: 'watch-only',
    accountPub: toBip84Pub(node, opts.network),
    accountPath: accountPath(opts.network),
    masterFingerprint: opts.masterFingerprint ?? '00000000',
    gapLimit: opts.gapLimit ?? DEFAULT_GAP_LIMIT,
    nextReceiveIndex: 0,
  }
  await writeWalletFile(opts.home, file)
  return file
}

export interface WalletAddress {
  address: string
  chain: Chain
  index: number
  scriptHex: string
}

export interface WalletUtxo extends ChainUtxo {
  address: WalletAddress
}

export interface WalletSnapshot {
  tipHeight: number
  utxos: WalletUtxo[]
  txs: ChainTx[]
  /** next unused index per chain after the scan */
  nextIndex: Record<Chain, number>
}

export interface Balance {
  confirmedSats: number
  unconfirmedSats: number
  totalSats: number
}

export interface HistoryEntry {
  txid: string
  /** received minus spent by this wallet, in satoshis (negative for payments out) */
  netSats: number
  feeSats?: number
  confirmations: number
  blockHeight?: number
  blockTime?: number
}

export interface SendRequest {
  to: string
  amountSats: number
  /** sat/vB; the backend's 6-block estimate when absent */
  feeRate?: number
}

export interface DraftPsbt {
  psbtBase64: string
  feeSats: number
  feeRate: number
  changeAddress?: string
  inputs: Array<{ txid: string; vout: number; valueSats: number }>
}

export interface Wallet {
  readonly network: BitcoinNetworkName
  readonly watchOnly: boolean
  readonly accountPub: string
  readonly file: WalletFile
  /** hands out a fresh receive address (persisted, never reused) */
  nextReceiveAddress(): Promise<WalletAddress>
  addressAt(chain: Chain, index: number): WalletAddress
  sync(signal?: AbortSignal): Promise<WalletSnapshot>
  balance(signal?: AbortSignal): Promise<Balance>
  history(signal?: AbortSignal): Promise<HistoryEntry[]>
  /** builds an unsigned PSBT (works watch-only; sign elsewhere and `importPsbt`) */
  createPsbt(req: SendRequest, signal?: AbortSignal): Promise<DraftPsbt>
  /** signs every input this wallet owns; throws ERR_WALLET_WATCH_ONLY without keys */
  signPsbt(psbtBase64: string): Promise<string>
  /** finalizes a fully signed PSBT and broadcasts it; returns the txid */
  broadcastPsbt(psbtBase64: string, signal?: AbortSignal): Promise<{ txid: string; hex: string }>
  send(req: SendRequest, signal?: AbortSignal): Promise<{ txid: string; feeSats: number; hex: string }>
}

export interface OpenWalletOptions {
  home: string
  backend: ChainBackend
  /** needed to sign; a locked wallet can still watch, receive and build PSBTs */
  passphrase?: string
  logger?: Logger
}

/** Opens the wallet in `<home>/wallet/`; decrypts the seed when a passphrase is given. */
export async function openWallet(opts: OpenWalletOptions): Promise<Wallet> {
  const log = opts.logger ?? makeLogger('rpib:wallet')
  let file = await readWalletFile(opts.home)
  if (file == null) {
    throw new PaymentError(
      'ERR_WALLET_MISSING',
      `no wallet in ${walletPath(opts.home)}; run \`rpib wallet create\` or \`rpib wallet restore\``,
    )
  }
  const network = file.network
  const account = parseAccountPub(file.accountPub, network)
  let signingAccount: BIP32Interface | undefined
  if (file.kind === 'hd' && opts.passphrase != null) {
    if (file.sealedSeed == null)
      throw new PaymentError(
        'ERR_WALLET_CORRUPT',
        'the wallet file has no sealed seed; restore it from your recovery phrase',
      )
    const sealed = JSON.parse(
      await decryptSecret(file.sealedSeed, opts.passphrase, sealedAssociatedData(file)),
    ) as SealedSeed
    const derived = accountFromMnemonic(sealed.mnemonic, network, sealed.bip39Passphrase)
    if (toBip84Pub(derived.account, network) !== file.accountPub) {
      throw new PaymentError('ERR_WALLET_CORRUPT', 'the sealed seed does not match the wallet account key')
    }
    signingAccount = derived.account
  }
  const backend = opts.backend
  const addressCache = new Map<string, WalletAddress>()
  const byScript = new Map<string, WalletAddress>()
  let persisting: Promise<void> = Promise.resolve()
  let lastSnapshot: WalletSnapshot | undefined

  function addressAt(chain: Chain, index: number): WalletAddress {
    const key = `${chain}/${index}`
    let a = addressCache.get(key)
    if (a == null) {
      const d = deriveAddress(account, network, chain, index)
      a = { address: d.address, chain, index, scriptHex: Buffer.from(d.script).toString('hex') }
      addressCache.set(key, a)
      byScript.set(a.scriptHex, a)
    }
    return a
  }

  /** Updates the in-memory file at once (so concurrent callers see it), then writes it in order. */
  function persist(update: Partial<WalletFile>): Promise<void> {
    file = { ...file!, ...update }
    const snapshot = file
    persisting = persisting.catch(() => undefined).then(() => writeWalletFile(opts.home, snapshot))
    return persisting
  }

  /** Scans a chain in windows of `gapLimit` addresses until `gapLimit` consecutive ones are unused. */
  async function scanChain(chain: Chain, minimum: number, signal?: AbortSignal) {
    const gap = file!.gapLimit
    const txs: ChainTx[] = []
    const used: WalletAddress[] = []
    let lastUsed = -1
    for (
      let start = 0;
      start < MAX_ADDRESSES_PER_CHAIN && start < Math.max(lastUsed + 1 + gap, minimum);
      start += gap
    ) {
      const window = Array.from({ length: gap }, (_, i) => addressAt(chain, start + i))
      await backend.watchAddresses(
        window.map((a) => a.address),
        signal,
      )
      const results = await Promise.all(window.map((a) => backend.addressTransactions(a.address, signal)))
      results.forEach((r, i) => {
        if (r.length === 0) return
        lastUsed = Math.max(lastUsed, window[i]!.index)
        used.push(window[i]!)
        txs.push(...r)
      })
    }
    return { txs, used, next: lastUsed + 1 }
  }

  async function sync(signal?: AbortSignal): Promise<WalletSnapshot> {
    const tipHeight = await backend.tipHeight(signal)
    const [receive, change] = await Promise.all([
      scanChain(0, file!.nextReceiveIndex, signal),
      scanChain(1, 0, signal),
    ])
    const utxoLists = await Promise.all(
      [...receive.used, ...change.used].map(async (a) =>
        (await backend.addressUtxos(a.address, signal)).map((u): WalletUtxo => ({ ...u, address: a })),
      ),
    )
    const seen = new Set<string>()
    const txs = [...receive.txs, ...change.txs].filter((t) =>
      seen.has(t.txid) ? false : (seen.add(t.txid), true),
    )
    if (receive.next > file!.nextReceiveIndex) await persist({ nextReceiveIndex: receive.next })
    lastSnapshot = {
      tipHeight,
      utxos: utxoLists.flat(),
      txs,
      nextIndex: { 0: Math.max(receive.next, file!.nextReceiveIndex), 1: change.next },
    }
    log('synced: %d utxos, %d txs, tip %d', lastSnapshot.utxos.length, txs.length, tipHeight)
    return lastSnapshot
  }

  function history(snapshot: WalletSnapshot): HistoryEntry[] {
    const ownOutputs = new Map<string, number>()
    for (const t of snapshot.txs) {
      for (const o of t.outputs)
        if (o.address != null && isOwnScript(o.scriptHex)) ownOutputs.set(`${t.txid}:${o.vout}`, o.valueSats)
    }
    return snapshot.txs
      .map((t): HistoryEntry => {
        const received = t.outputs
          .filter((o) => isOwnScript(o.scriptHex))
          .reduce((a, o) => a + o.valueSats, 0)
        const spent = t.inputs.reduce((a, i) => a + (ownOutputs.get(`${i.txid}:${i.vout}`) ?? 0), 0)
        return {
          txid: t.txid,
          netSats: received - spent,
          ...(t.feeSats != null ? { feeSats: t.feeSats } : {}),
          confirmations: confirmations(t.status, snapshot.tipHeight),
          ...(t.status.blockHeight != null ? { blockHeight: t.status.blockHeight } : {}),
          ...(t.status.blockTime != null ? { blockTime: t.status.blockTime } : {}),
        }
      })
      .sort((a, b) => a.confirmations - b.confirmations) // unconfirmed first, then newest
  }

  function isOwnScript(scriptHex: string): boolean {
    return byScript.has(scriptHex)
  }

  function requireSigner(): BIP32Interface {
    if (file!.kind === 'watch-only') {
      throw new PaymentError(
        'ERR_WALLET_WATCH_ONLY',
        'this is a watch-only wallet: export the PSBT, sign it in your external wallet, then import it',
      )
    }
    if (signingAccount == null) {
      throw new PaymentError(
        'ERR_WALLET_PASSPHRASE',
        'the wallet is locked; set RPIB_WALLET_PASSPHRASE to sign',
      )
    }
    return signingAccount
  }

  async function createPsbt(req: SendRequest, signal?: AbortSignal): Promise<DraftPsbt> {
    assertSats(req.amountSats, 'amount')
    if (req.amountSats < DUST_SATS)
      throw new PaymentError(
        'ERR_AMOUNT_INVALID',
        `amount must be at least ${DUST_SATS} sats (smaller outputs are dust)`,
      )
    const toScript = addressToScript(req.to, network)
    const feeRate = req.feeRate ?? (await backend.feeRate(6, signal))
    if (!Number.isInteger(feeRate) || feeRate < 1 || feeRate > 10_000) {
      throw new PaymentError(
        'ERR_AMOUNT_INVALID',
        `fee rate must be a whole number of sat/vB between 1 and 10000 (got ${feeRate})`,
      )
    }
    const snapshot = await sync(signal)
    const candidates = snapshot.utxos.map((u) => ({
      ...u,
      value: u.valueSats,
      script: { length: P2WPKH_INPUT_EXTRA_VBYTES },
    }))
    const selected = coinSelect(
      candidates,
      [{ address: req.to, value: req.amountSats, script: toScript }],
      feeRate,
    )
    if (selected.inputs == null || selected.outputs == null) {
      const have = snapshot.utxos.reduce((a, u) => a + u.valueSats, 0)
      throw new PaymentError(
        'ERR_INSUFFICIENT_FUNDS',
        `insufficient funds: sending ${req.amountSats} sats at ${feeRate} sat/vB needs about ${req.amountSats + selected.fee} sats, the wallet has ${have}`,
      )
    }
    const psbt = new Psbt({ network: networkParams(network).bitcoinjs })
    const fingerprint = Buffer.from(file!.masterFingerprint, 'hex')
    for (const u of selected.inputs) {
      const node = account.derive(u.address.chain).derive(u.address.index)
      psbt.addInput({
        hash: u.txid,
        index: u.vout,
        sequence: RBF_SEQUENCE,
        witnessUtxo: { script: Buffer.from(u.address.scriptHex, 'hex'), value: BigInt(u.valueSats) },
        bip32Derivation: [
          {
            masterFingerprint: fingerprint,
            path: `${file!.accountPath}/${u.address.chain}/${u.address.index}`,
            pubkey: node.publicKey,
          },
        ],
      })
    }
    let changeAddress: string | undefined
    for (const o of selected.outputs) {
      if (o.address == null) {
        // coinselect adds an address-less output for the change
        const change = addressAt(1, snapshot.nextIndex[1])
        const node = account.derive(1).derive(change.index)
        changeAddress = change.address
        psbt.addOutput({
          script: Buffer.from(change.scriptHex, 'hex'),
          value: BigInt(o.value),
          bip32Derivation: [
            {
              masterFingerprint: fingerprint,
              path: `${file!.accountPath}/1/${change.index}`,
              pubkey: node.publicKey,
            },
          ],
        })
      } else {
        psbt.addOutput({ script: toScript, value: BigInt(o.value) })
      }
    }
    return {
      psbtBase64: psbt.toBase64(),
      feeSats: selected.fee,
      feeRate,
      ...(changeAddress != null ? { changeAddress } : {}),
      inputs: selected.inputs.map((u) => ({ txid: u.txid, vout: u.vout, valueSats: u.valueSats })),
    }
  }

  function parsePsbt(b64: string): Psbt {
    try {
      return Psbt.fromBase64(b64.trim(), { network: networkParams(network).bitcoinjs })
    } catch (err) {
      throw new PaymentError('ERR_PSBT_INVALID', `not a valid base64 PSBT (${(err as Error).message})`, {
        cause: err,
      })
    }
  }

  async function signPsbt(b64: string): Promise<string> {
    const signer = requireSigner()
    const psbt = parsePsbt(b64)
    let signed = 0
    psbt.data.inputs.forEach((input, i) => {
      const script = input.witnessUtxo?.script
      const own = script != null ? byScript.get(Buffer.from(script).toString('hex')) : undefined
      if (own == null) return
      psbt.signInput(i, signer.derive(own.chain).derive(own.index))
      signed++
    })
    if (signed === 0)
      throw new PaymentError(
        'ERR_PSBT_INVALID',
        'the PSBT spends nothing this wallet owns (sync first or check the network)',
      )
    return psbt.toBase64()
  }

  async function broadcastPsbt(b64: string, signal?: AbortSignal): Promise<{ txid: string; hex: string }> {
    const psbt = parsePsbt(b64)
    const validator = (pubkey: Uint8Array, msghash: Uint8Array, signature: Uint8Array) =>
      ecc.verify(msghash, pubkey, signature)
    psbt.data.inputs.forEach((input, i) => {
      if (input.finalScriptWitness != null || input.finalScriptSig != null) return
      if (input.partialSig == null || input.partialSig.length === 0) {
        throw new PaymentError(
          'ERR_PSBT_INCOMPLETE',
          `input ${i} of the PSBT is not signed yet; sign it before importing`,
        )
      }
      if (!psbt.validateSignaturesOfInput(i, validator))
        throw new PaymentError('ERR_PSBT_INVALID', `input ${i} has an invalid signature`)
      psbt.finalizeInput(i)
    })
    const tx = psbt.extractTransaction()
    const hex = tx.toHex()
    const txid = await backend.broadcast(hex, signal)
    return { txid, hex }
  }

  return {
    network,
    watchOnly: file.kind === 'watch-only',
    accountPub: file.accountPub,
    get file() {
      return file!
    },
    async nextReceiveAddress() {
      const index = file!.nextReceiveIndex
      await persist({ nextReceiveIndex: index + 1 })
      const a = addressAt(0, index)
      await backend.watchAddresses([a.address])
      return a
    },
    addressAt,
    sync,
    async balance(signal) {
      const s = await sync(signal)
      const confirmedSats = s.utxos.filter((u) => u.status.confirmed).reduce((a, u) => a + u.valueSats, 0)
      const unconfirmedSats = s.utxos.filter((u) => !u.status.confirmed).reduce((a, u) => a + u.valueSats, 0)
      return { confirmedSats, unconfirmedSats, totalSats: confirmedSats + unconfirmedSats }
    },
    async history(signal) {
      return history(await sync(signal))
    },
    createPsbt,
    signPsbt,
    broadcastPsbt,
    async send(req, signal) {
      requireSigner()
      const draft = await createPsbt(req, signal)
      const signed = await signPsbt(draft.psbtBase64)
      const { txid, hex } = await broadcastPsbt(signed, signal)
      log('sent %d sats to %s in %s (fee %d)', req.amountSats, req.to, txid, draft.feeSats)
      return { txid, feeSats: draft.feeSats, hex }
    },
  }
}
