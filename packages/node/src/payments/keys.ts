import * as ecc from '@bitcoinerlab/secp256k1'
import { BIP32Factory, type BIP32Interface } from 'bip32'
import * as bip39 from 'bip39'
import bs58check from 'bs58check'
import { payments } from 'bitcoinjs-lib'
import { PaymentError } from './errors.js'
import { networkParams, type BitcoinNetworkName } from './networks.js'

export const bip32 = BIP32Factory(ecc)

/** 0 = receive addresses, 1 = change addresses (BIP44 "change" level). */
export type Chain = 0 | 1

/** Standard xpub/tpub version bytes that bip32 understands, by SLIP-132 BIP84 version. */
const SLIP132_TO_BIP32: Record<number, number> = {
  0x04b24746: 0x0488b21e, // zpub -> xpub
  0x045f1cf6: 0x043587cf, // vpub -> tpub
  0x0488b21e: 0x0488b21e,
  0x043587cf: 0x043587cf,
}

export function generateMnemonic(words: 12 | 24 = 24): string {
  return bip39.generateMnemonic(words === 24 ? 256 : 128)
}

export function validateMnemonic(mnemonic: string): string {
  const normalized = mnemonic.trim().toLowerCase().split(/\s+/).join(' ')
  if (!bip39.validateMnemonic(normalized)) {
    throw new PaymentError(
      'ERR_MNEMONIC_INVALID',
      'the recovery phrase is not a valid BIP39 English mnemonic; check every word and their order',
    )
  }
  return normalized
}

/** The BIP84 account path m/84'/coin'/account'. */
export function accountPath(network: BitcoinNetworkName, account = 0): string {
  return `m/84'/${networkParams(network).coinType}'/${account}'`
}

/** The BIP32 root and the BIP84 account node of a mnemonic (+ optional BIP39 passphrase). */
export function accountFromMnemonic(
  mnemonic: string,
  network: BitcoinNetworkName,
  bip39Passphrase = '',
  account = 0,
): { root: BIP32Interface; account: BIP32Interface; fingerprint: Uint8Array } {
  const seed = bip39.mnemonicToSeedSync(validateMnemonic(mnemonic), bip39Passphrase)
  const root = bip32.fromSeed(seed, networkParams(network).bitcoinjs)
  return { root, account: root.derivePath(accountPath(network, account)), fingerprint: root.fingerprint }
}

/** The account public key in SLIP-132 BIP84 form: zpub on mainnet, vpub on test networks. */
export function toBip84Pub(account: BIP32Interface, network: BitcoinNetworkName): string {
  const raw = bs58check.decode(account.neutered().toBase58())
  const out = Uint8Array.from(raw)
  new DataView(out.buffer).setUint32(0, networkParams(network).bip84PubVersion)
  return bs58check.encode(out)
}

/**
 * Parses an account public key (zpub/vpub or xpub/tpub) for watch-only use; a key of the other
 * network kind (mainnet vs test) is rejected.
 */
export function parseAccountPub(pub: string, network: BitcoinNetworkName): BIP32Interface {
  let raw: Uint8Array
  try {
    raw = Uint8Array.from(bs58check.decode(pub.trim()))
  } catch (err) {
    throw new PaymentError(
      'ERR_XPUB_INVALID',
      'the account key is not a valid base58check extended public key',
      { cause: err },
    )
  }
  if (raw.length !== 78)
    throw new PaymentError(
      'ERR_XPUB_INVALID',
      'the account key has the wrong length for an extended public key',
    )
  const view = new DataView(raw.buffer)
  const version = view.getUint32(0)
  const bip32Version = SLIP132_TO_BIP32[version]
  const params = networkParams(network)
  if (bip32Version == null)
    throw new PaymentError('ERR_XPUB_INVALID', 'the account key is not an xpub, tpub, zpub or vpub')
  if (bip32Version !== params.bitcoinjs.bip32.public) {
    throw new PaymentError('ERR_XPUB_INVALID', `the account key belongs to another network than ${network}`)
  }
  view.setUint32(0, bip32Version)
  try {
    const node = bip32.fromBase58(bs58check.encode(raw), params.bitcoinjs)
    if (!node.isNeutered()) throw new Error('private key')
    return node
  } catch (err) {
    throw new PaymentError('ERR_XPUB_INVALID', 'the account key does not decode to a public key', {
      cause: err,
    })
  }
}

/** The P2WPKH address and script at account/chain/index. */
export function deriveAddress(
  account: BIP32Interface,
  network: BitcoinNetworkName,
  chain: Chain,
  index: number,
): { address: string; script: Uint8Array; publicKey: Uint8Array } {
  const node = account.derive(chain).derive(index)
  const p = payments.p2wpkh({ pubkey: node.publicKey, network: networkParams(network).bitcoinjs })
  return { address: p.address!, script: p.output!, publicKey: node.publicKey }
}
