import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as bip39 from 'bip39'
import {
  accountFromMnemonic,
  bip32,
  deriveAddress,
  parseAccountPub,
  toBip84Pub,
} from '../../src/payments/keys.js'
import { addressToScript } from '../../src/payments/networks.js'
import { PaymentError } from '../../src/payments/errors.js'
import { btcNumberToSats, btcStringToSats, satsToBtcString } from '../../src/payments/amounts.js'
import { createWallet, createWatchOnlyWallet, openWallet } from '../../src/payments/wallet.js'
import { createEsploraBackend } from '../../src/payments/esplora.js'
import { TEST_KDF } from './helpers/env.js'

const fixtures = new URL('../../../test/fixtures/payments/', import.meta.url)
const bip39Vectors = JSON.parse(readFileSync(new URL('bip39-vectors.json', fixtures), 'utf8')) as {
  passphrase: string
  vectors: Array<{ entropy: string; mnemonic: string; seed: string; xprv: string }>
}
const bip84 = JSON.parse(readFileSync(new URL('bip84-vectors.json', fixtures), 'utf8')) as {
  mnemonic: string
  account0: { xprv: string; xpub: string }
  receive0: { pubkey: string; address: string }
  receive1: { pubkey: string; address: string }
  change0: { pubkey: string; address: string }
}

const isCode = (code: string) => (e: unknown) => e instanceof PaymentError && e.code === code

test('official BIP39 vectors: entropy -> mnemonic -> seed (passphrase TREZOR) -> master key', () => {
  assert.ok(bip39Vectors.vectors.length >= 6)
  for (const v of bip39Vectors.vectors) {
    assert.equal(bip39.entropyToMnemonic(v.entropy), v.mnemonic)
    const seed = bip39.mnemonicToSeedSync(v.mnemonic, bip39Vectors.passphrase)
    assert.equal(Buffer.from(seed).toString('hex'), v.seed)
    assert.equal(bip32.fromSeed(seed).toBase58(), v.xprv)
  }
})

test('official BIP84 vectors: account zpub, first receive and change addresses', () => {
  const { account } = accountFromMnemonic(bip84.mnemonic, 'mainnet')
  assert.equal(toBip84Pub(account, 'mainnet'), bip84.account0.xpub)
  for (const [chain, v] of [
    [0, bip84.receive0],
    [1, bip84.change0],
  ] as const) {
    const a = deriveAddress(account, 'mainnet', chain, 0)
    assert.equal(a.address, v.address)
    assert.equal(Buffer.from(a.publicKey).toString('hex'), v.pubkey)
  }
  assert.equal(deriveAddress(account, 'mainnet', 0, 1).address, bip84.receive1.address)
  // watch-only from the published zpub derives the same addresses
  const watch = parseAccountPub(bip84.account0.xpub, 'mainnet')
  assert.equal(deriveAddress(watch, 'mainnet', 0, 0).address, bip84.receive0.address)
})

test('each network gets its own address prefix, and foreign addresses are rejected', () => {
  const { account: test } = accountFromMnemonic(bip84.mnemonic, 'testnet')
  const { account: reg } = accountFromMnemonic(bip84.mnemonic, 'regtest')
  assert.match(deriveAddress(test, 'testnet', 0, 0).address, /^tb1q/)
  assert.match(deriveAddress(reg, 'regtest', 0, 0).address, /^bcrt1q/)
  assert.match(toBip84Pub(test, 'testnet'), /^vpub/)
  assert.throws(() => addressToScript(bip84.receive0.address, 'regtest'), isCode('ERR_ADDRESS_NETWORK'))
  assert.throws(
    () => addressToScript(deriveAddress(reg, 'regtest', 0, 0).address, 'mainnet'),
    isCode('ERR_ADDRESS_NETWORK'),
  )
  assert.throws(
    () => addressToScript('bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyX', 'mainnet'),
    isCode('ERR_ADDRESS_INVALID'),
  )
  assert.throws(() => parseAccountPub(bip84.account0.xpub, 'regtest'), isCode('ERR_XPUB_INVALID'))
  assert.throws(() => parseAccountPub(bip84.account0.xprv, 'mainnet'), isCode('ERR_XPUB_INVALID'))
  assert.throws(() => parseAccountPub('zpubnonsense', 'mainnet'), isCode('ERR_XPUB_INVALID'))
})

test('mnemonics with a bad checksum or unknown words are refused', () => {
  assert.throws(
    () => accountFromMnemonic('abandon '.repeat(12).trim(), 'mainnet'),
    isCode('ERR_MNEMONIC_INVALID'),
  )
  assert.throws(
    () => accountFromMnemonic('bitcoin is great '.repeat(4).trim(), 'mainnet'),
    isCode('ERR_MNEMONIC_INVALID'),
  )
  // case and spacing are normalized
  const { account } = accountFromMnemonic(
    `  ${bip84.mnemonic.toUpperCase().replace(/ /g, '   ')} `,
    'mainnet',
  )
  assert.equal(toBip84Pub(account, 'mainnet'), bip84.account0.xpub)
})

test('amounts are exact integer satoshis', () => {
  assert.equal(satsToBtcString(1), '0.00000001')
  assert.equal(satsToBtcString(150_000_000), '1.5')
  assert.equal(satsToBtcString(2_100_000_000_000_000), '21000000')
  assert.equal(btcStringToSats('0.1'), 10_000_000)
  assert.equal(btcNumberToSats(0.1 + 0.2), 30_000_000)
  assert.throws(() => btcStringToSats('0.000000001'), isCode('ERR_AMOUNT_INVALID'))
  assert.throws(() => satsToBtcString(-1), isCode('ERR_AMOUNT_INVALID'))
})

test('watch-only wallet from a vpub: hands out addresses, refuses to sign', async () => {
  const home = await mkdtemp(join(tmpdir(), 'rpib-watch-'))
  try {
    const { account } = accountFromMnemonic(bip84.mnemonic, 'regtest')
    const vpub = toBip84Pub(account, 'regtest')
    await createWatchOnlyWallet({ home, network: 'regtest', accountPub: vpub })
    await assert.rejects(
      createWallet({ home, network: 'regtest', passphrase: 'long enough', kdf: TEST_KDF }),
      isCode('ERR_WALLET_EXISTS'),
    )
    // the backend is unreachable on purpose: address handout needs no network with Esplora
    const wallet = await openWallet({
      home,
      backend: createEsploraBackend({ url: 'http://127.0.0.1:9', timeoutMs: 500 }),
    })
    assert.equal(wallet.watchOnly, true)
    assert.equal((await wallet.nextReceiveAddress()).address, deriveAddress(account, 'regtest', 0, 0).address)
    assert.equal((await wallet.nextReceiveAddress()).index, 1)
    await assert.rejects(wallet.signPsbt('cHNidP8BAAoCAAAAAAAAAAAAAA=='), isCode('ERR_WALLET_WATCH_ONLY'))
    await assert.rejects(wallet.balance(), isCode('ERR_BACKEND_UNREACHABLE'))
    const reopened = await openWallet({ home, backend: createEsploraBackend({ url: 'http://127.0.0.1:9' }) })
    assert.equal(reopened.file.nextReceiveIndex, 2, 'handed-out addresses are never reused')
  } finally {
    await rm(home, { recursive: true, force: true })
  }
})

test('a short wallet passphrase is refused', async () => {
  const home = await mkdtemp(join(tmpdir(), 'rpib-short-'))
  try {
    await assert.rejects(
      createWallet({ home, network: 'regtest', passphrase: 'short', kdf: TEST_KDF }),
      isCode('ERR_WALLET_PASSPHRASE'),
    )
  } finally {
    await rm(home, { recursive: true, force: true })
  }
})
