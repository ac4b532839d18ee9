import { address as btcAddress, networks, type Network } from 'bitcoinjs-lib'
import { z } from 'zod'
import { PaymentError } from './errors.js'

/** Networks the wallet supports; testnet covers testnet3/testnet4 (same address and key formats). */
export const BitcoinNetworkName = z.enum(['mainnet', 'testnet', 'signet', 'regtest'])
export type BitcoinNetworkName = z.infer<typeof BitcoinNetworkName>

export interface NetworkParams {
  name: BitcoinNetworkName
  bitcoinjs: Network
  /** BIP44 coin type: 0 on mainnet, 1 on every test network */
  coinType: 0 | 1
  /** SLIP-132 version bytes of BIP84 account public keys: zpub on mainnet, vpub elsewhere */
  bip84PubVersion: number
}

export function networkParams(name: BitcoinNetworkName): NetworkParams {
  switch (name) {
    case 'mainnet':
      return { name, bitcoinjs: networks.bitcoin, coinType: 0, bip84PubVersion: 0x04b24746 }
    case 'testnet':
    case 'signet':
      return { name, bitcoinjs: networks.testnet, coinType: 1, bip84PubVersion: 0x045f1cf6 }
    case 'regtest':
      return { name, bitcoinjs: networks.regtest, coinType: 1, bip84PubVersion: 0x045f1cf6 }
  }
}

/**
 * The output script of an address, or a typed error: an address of another network is rejected
 * with its own code, so a mainnet address can never be paid from a regtest wallet (and vice versa).
 */
export function addressToScript(address: string, network: BitcoinNetworkName): Uint8Array {
  const params = networkParams(network)
  try {
    return btcAddress.toOutputScript(address, params.bitcoinjs)
  } catch (err) {
    for (const other of BitcoinNetworkName.options) {
      if (other === network || networkParams(other).bitcoinjs === params.bitcoinjs) continue
      try {
        btcAddress.toOutputScript(address, networkParams(other).bitcoinjs)
        throw new PaymentError(
          'ERR_ADDRESS_NETWORK',
          `address ${address} is a ${other} address, but this wallet is on ${network}; use a ${network} address`,
        )
      } catch (inner) {
        if (inner instanceof PaymentError) throw inner
      }
    }
    throw new PaymentError('ERR_ADDRESS_INVALID', `"${address}" is not a valid Bitcoin address`, {
      cause: err,
    })
  }
}

/** The address of an output script on a network, or undefined for non-standard scripts. */
export function scriptToAddress(script: Uint8Array, network: BitcoinNetworkName): string | undefined {
  try {
    return btcAddress.fromOutputScript(script, networkParams(network).bitcoinjs)
  } catch {
    return undefined
  }
}
