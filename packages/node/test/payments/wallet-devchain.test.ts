import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { stat } from 'node:fs/promises'
import { Psbt, Transaction } from 'bitcoinjs-lib'
import { openWallet } from '../../src/payments/wallet.js'
import { walletPath } from '../../src/payments/wallet-file.js'
import { PaymentError } from '../../src/payments/errors.js'
import { paymentsEnv, PASSPHRASE, type PaymentsEnv } from './helpers/env.js'

let env: PaymentsEnv
before(async () => {
  env = await paymentsEnv()
})
after(async () => {
  await env.close()
})

test('faucet funds a wallet: unconfirmed, then confirmed after a block', async () => {
  const { wallet } = await env.newWallet('faucet')
  const addr = await wallet.nextReceiveAddress()
  assert.match(addr.address, /^bcrt1q/)
  await env.devchain.faucet(addr.address, 150_000)
  assert.deepEqual(await wallet.balance(), { confirmedSats: 0, unconfirmedSats: 150_000, totalSats: 150_000 })
  await env.devchain.mine(1)
  assert.deepEqual(await wallet.balance(), { confirmedSats: 150_000, unconfirmedSats: 0, totalSats: 150_000 })
})

test('send pays the recipient, returns change to the wallet and pays exactly the stated fee', async () => {
  const alice = await env.newWallet('alice')
  const bob = await env.newWallet('bob')
  await env.devchain.faucet((await alice.wallet.nextReceiveAddress()).address, 1_000_000)
  await env.devchain.mine(1)
  const to = (await bob.wallet.nextReceiveAddress()).address
  const sent = await alice.wallet.send({ to, amountSats: 250_000, feeRate: 3 })
  const tx = Transaction.fromHex(sent.hex)
  assert.equal(tx.getId(), sent.txid)
  assert.ok(
    tx.ins.every((i) => i.sequence === 0xfffffffd),
    'every input signals RBF',
  )
  assert.ok(
    sent.feeSats >= 3 * tx.virtualSize() && sent.feeSats <= 4 * tx.virtualSize(),
    `fee ${sent.feeSats} for ${tx.virtualSize()} vB`,
  )
  await env.devchain.mine(1)
  assert.equal((await bob.wallet.balance()).confirmedSats, 250_000)
  assert.equal((await alice.wallet.balance()).confirmedSats, 1_000_000 - 250_000 - sent.feeSats)
  const history = await alice.wallet.history()
  assert.deepEqual(
    history.map((h) => h.netSats).sort((a, b) => a - b),
    [-(250_000 + sent.feeSats), 1_000_000],
  )
})

test('a send beyond the balance fails with ERR_INSUFFICIENT_FUNDS and broadcasts nothing', async () => {
  const { wallet } = await env.newWallet('poor')
  await env.devchain.faucet((await wallet.nextReceiveAddress()).address, 10_000)
  await env.devchain.mine(1)
  const mempoolBefore = env.devchain.chain.mempoolSize()
  await assert.rejects(
    wallet.send({ to: (await wallet.nextReceiveAddress()).address, amountSats: 20_000, feeRate: 1 }),
    (e: unknown) => e instanceof PaymentError && e.code === 'ERR_INSUFFICIENT_FUNDS',
  )
  assert.equal(env.devchain.chain.mempoolSize(), mempoolBefore)
})

test('addresses of another network are rejected when sending', async () => {
  const { wallet } = await env.newWallet('wrongnet')
  await assert.rejects(
    wallet.send({ to: 'bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu', amountSats: 1000, feeRate: 1 }),
    (e: unknown) => e instanceof PaymentError && e.code === 'ERR_ADDRESS_NETWORK',
  )
  await assert.rejects(
    wallet.send({ to: 'not-an-address', amountSats: 1000, feeRate: 1 }),
    (e: unknown) => e instanceof PaymentError && e.code === 'ERR_ADDRESS_INVALID',
  )
})

test('restore from the mnemonic finds the same balance, including change and addresses past a gap', async () => {
  const original = await env.newWallet('orig')
  const other = await env.newWallet('other')
  // funds at receive index 0 and 7 (a gap inside the limit), then a spend that creates change
  await env.devchain.faucet(original.wallet.addressAt(0, 0).address, 400_000)
  await env.devchain.faucet(original.wallet.addressAt(0, 7).address, 300_000)
  await env.devchain.mine(1)
  await original.wallet.send({
    to: (await other.wallet.nextReceiveAddress()).address,
    amountSats: 123_456,
    feeRate: 2,
  })
  await env.devchain.mine(1)
  const expected = await original.wallet.balance()
  const restored = await env.newWallet('restored', original.mnemonic)
  assert.equal(restored.wallet.accountPub, original.wallet.accountPub)
  assert.deepEqual(await restored.wallet.balance(), expected)
  assert.ok(expected.confirmedSats > 0)
})

test('the seed file is 0600, encrypted, and a wrong passphrase is refused', async () => {
  const { home, mnemonic } = await env.newWallet('sealed')
  const path = walletPath(home)
  assert.equal((await stat(path)).mode & 0o777, 0o600)
  const { readFile } = await import('node:fs/promises')
  const text = await readFile(path, 'utf8')
  for (const word of new Set(mnemonic.split(' ')))
    assert.ok(!text.includes(` ${word} `), 'no mnemonic word in clear')
  assert.ok(!text.includes(mnemonic))
  await assert.rejects(
    openWallet({ home, backend: env.backend, passphrase: 'not the passphrase' }),
    (e: unknown) => e instanceof PaymentError && e.code === 'ERR_WALLET_PASSPHRASE',
  )
  const locked = await openWallet({ home, backend: env.backend })
  await assert.rejects(
    locked.send({ to: locked.addressAt(0, 3).address, amountSats: 1000, feeRate: 1 }),
    (e: unknown) => e instanceof PaymentError && e.code === 'ERR_WALLET_PASSPHRASE',
  )
  const unlocked = await openWallet({ home, backend: env.backend, passphrase: PASSPHRASE })
  assert.equal(unlocked.accountPub, locked.accountPub)
})

test('PSBT round trip: export unsigned from a watch-only view, sign with the keys, import and broadcast', async () => {
  const hot = await env.newWallet('psbt-hot')
  const dest = await env.newWallet('psbt-dest')
  await env.devchain.faucet((await hot.wallet.nextReceiveAddress()).address, 500_000)
  await env.devchain.mine(1)
  const locked = await openWallet({ home: hot.home, backend: env.backend })
  const draft = await locked.createPsbt({
    to: (await dest.wallet.nextReceiveAddress()).address,
    amountSats: 100_000,
    feeRate: 2,
  })
  const unsigned = Psbt.fromBase64(draft.psbtBase64)
  assert.equal(unsigned.data.inputs[0]!.bip32Derivation?.[0]?.path.startsWith("m/84'/1'/0'/0/"), true)
  await assert.rejects(
    locked.broadcastPsbt(draft.psbtBase64),
    (e: unknown) => e instanceof PaymentError && e.code === 'ERR_PSBT_INCOMPLETE',
  )
  await assert.rejects(
    locked.broadcastPsbt('garbage'),
    (e: unknown) => e instanceof PaymentError && e.code === 'ERR_PSBT_INVALID',
  )
  const signed = await hot.wallet.signPsbt(draft.psbtBase64)
  const { txid } = await locked.broadcastPsbt(signed)
  await env.devchain.mine(1)
  assert.equal((await dest.wallet.balance()).confirmedSats, 100_000)
  assert.equal(env.devchain.chain.state(txid).where, 'block')
})
