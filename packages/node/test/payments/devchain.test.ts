import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as ecc from '@bitcoinerlab/secp256k1'
import { ECPairFactory } from 'ecpair'
import { Psbt, Transaction, networks, payments, script } from 'bitcoinjs-lib'
import { createDevchain } from '../../src/payments/devchain/server.js'
import { PaymentError } from '../../src/payments/errors.js'
import { paymentsEnv, type PaymentsEnv } from './helpers/env.js'

const ECPair = ECPairFactory(ecc)
let env: PaymentsEnv
before(async () => {
  env = await paymentsEnv()
})
after(async () => {
  await env.close()
})

async function fundedDraft(name: string, amount = 200_000) {
  const { wallet } = await env.newWallet(name)
  await env.devchain.faucet((await wallet.nextReceiveAddress()).address, 1_000_000)
  await env.devchain.mine(1)
  const to = wallet.addressAt(0, 5).address
  const draft = await wallet.createPsbt({ to, amountSats: amount, feeRate: 2 })
  const signed = Psbt.fromBase64(await wallet.signPsbt(draft.psbtBase64))
  signed.finalizeAllInputs()
  return { wallet, tx: signed.extractTransaction(), to }
}

test('Esplora endpoints answer with Esplora shapes', async () => {
  const base = env.devchain.url
  const height = Number(await (await fetch(`${base}/blocks/tip/height`)).text())
  assert.equal(height, env.devchain.chain.height)
  const hash = await (await fetch(`${base}/blocks/tip/hash`)).text()
  assert.equal(await (await fetch(`${base}/block-height/${height}`)).text(), hash)
  assert.equal((await fetch(`${base}/block-height/99999`)).status, 404)
  const fees = (await (await fetch(`${base}/fee-estimates`)).json()) as Record<string, number>
  assert.equal(typeof fees['1'], 'number')
  assert.equal(await env.backend.tipHash(), hash)
  assert.equal((await fetch(`${base}/tx/${'ab'.repeat(32)}`)).status, 404)
  assert.equal(await env.backend.transaction('ab'.repeat(32)), undefined)
  assert.equal(
    (await fetch(`${base}/address/bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu/txs`)).status,
    400,
    'mainnet address refused',
  )
})

test('a valid signed transaction is accepted, and a tampered signature is rejected', async () => {
  const { tx } = await fundedDraft('tamper')
  const tampered = Transaction.fromHex(tx.toHex())
  const sig = Uint8Array.from(tampered.ins[0]!.witness[0]!)
  sig[10] ^= 0x01 // flip a bit inside r
  tampered.ins[0]!.witness = [sig, tampered.ins[0]!.witness[1]!]
  await assert.rejects(env.backend.broadcast(tampered.toHex()), (e: unknown) => {
    assert.ok(e instanceof PaymentError && e.code === 'ERR_TX_REJECTED')
    assert.match(e.message, /script-verify-flag-failed|Non-canonical/)
    return true
  })
  // a valid signature over different outputs: the signature no longer commits to the transaction
  const moved = Transaction.fromHex(tx.toHex())
  moved.outs[0]!.value -= 1000n
  await assert.rejects(env.backend.broadcast(moved.toHex()), /script-verify-flag-failed/)
  assert.equal(env.devchain.chain.state(tx.getId()).where, 'unknown')
  assert.equal(await env.backend.broadcast(tx.toHex()), tx.getId())
  assert.equal(env.devchain.chain.state(tx.getId()).where, 'mempool')
})

test('missing inputs, outputs above inputs, duplicates and garbage are rejected', async () => {
  const { tx } = await fundedDraft('rules')
  const missing = Transaction.fromHex(tx.toHex())
  missing.ins[0]!.hash = new Uint8Array(32).fill(7)
  await assert.rejects(env.backend.broadcast(missing.toHex()), /missingorspent/)
  await assert.rejects(env.backend.broadcast('00ff'), /decode failed/)
  await env.backend.broadcast(tx.toHex())
  await assert.rejects(env.backend.broadcast(tx.toHex()), /already-known/)
  // outputs above inputs, with a valid signature so only the value rule can fail
  const key = ECPair.makeRandom({ network: networks.regtest })
  const own = payments.p2wpkh({ pubkey: key.publicKey, network: networks.regtest })
  const fundTxid = await env.devchain.faucet(own.address!, 50_000)
  const fundTx = Transaction.fromHex((await env.backend.transactionHex(fundTxid))!)
  const vout = fundTx.outs.findIndex((o) => Buffer.from(o.script).equals(Buffer.from(own.output!)))
  const spend = (outValue: bigint) => {
    const t = new Transaction()
    t.version = 2
    t.addInput(Uint8Array.from(Buffer.from(fundTxid, 'hex')).reverse(), vout, 0xfffffffd)
    t.addOutput(own.output!, outValue)
    const sighash = t.hashForWitnessV0(
      0,
      payments.p2pkh({ hash: own.hash! }).output!,
      50_000n,
      Transaction.SIGHASH_ALL,
    )
    t.setWitness(0, [script.signature.encode(key.sign(sighash), Transaction.SIGHASH_ALL), key.publicKey])
    return t.toHex()
  }
  await assert.rejects(env.backend.broadcast(spend(60_000n)), /in-belowout/)
  assert.match(await env.backend.broadcast(spend(49_000n)), /^[0-9a-f]{64}$/)
})

test('a double spend is refused unless it replaces by fee (BIP125)', async () => {
  const { wallet } = await env.newWallet('rbf')
  await env.devchain.faucet((await wallet.nextReceiveAddress()).address, 300_000)
  await env.devchain.mine(1)
  const first = await wallet.send({ to: wallet.addressAt(0, 10).address, amountSats: 100_000, feeRate: 2 })
  const utxo = Transaction.fromHex(first.hex).ins[0]!
  // same input, lower fee: refused
  const build = async (feeRate: number) => {
    const psbt = new Psbt({ network: networks.regtest })
    const prevTxid = Buffer.from(Uint8Array.from(utxo.hash).reverse()).toString('hex')
    const prev = Transaction.fromHex((await env.backend.transactionHex(prevTxid))!)
    const out = prev.outs[utxo.index]!
    psbt.addInput({
      hash: prevTxid,
      index: utxo.index,
      sequence: 0xfffffffd,
      witnessUtxo: { script: out.script, value: out.value },
    })
    psbt.addOutput({ address: wallet.addressAt(0, 11).address, value: out.value - BigInt(feeRate * 110) })
    const signed = Psbt.fromBase64(await wallet.signPsbt(psbt.toBase64()))
    signed.finalizeAllInputs()
    return signed.extractTransaction().toHex()
  }
  await assert.rejects(env.backend.broadcast(await build(1)), /insufficient fee/)
  const replacement = await env.backend.broadcast(await build(20))
  assert.equal(env.devchain.chain.state(first.txid).where, 'unknown', 'the original left the mempool')
  assert.equal(env.devchain.chain.state(replacement).where, 'mempool')
  const outspend = await env.backend.outspend(
    Buffer.from(Uint8Array.from(utxo.hash).reverse()).toString('hex'),
    utxo.index,
  )
  assert.deepEqual(outspend, { spent: true, txid: replacement })
})

test('reorg puts confirmed transactions back into the mempool, or drops them', async () => {
  const { wallet } = await env.newWallet('reorg')
  const addr = (await wallet.nextReceiveAddress()).address
  const txid = await env.devchain.faucet(addr, 70_000)
  const [hash] = await env.devchain.mine(1)
  const height = env.devchain.chain.height
  assert.deepEqual((await env.backend.transaction(txid))?.status, {
    confirmed: true,
    blockHeight: height,
    blockHash: hash,
    blockTime: env.devchain.chain.tip.time,
  })
  await env.devchain.reorg(1)
  assert.equal(env.devchain.chain.height, height - 1)
  assert.deepEqual((await env.backend.transaction(txid))?.status, { confirmed: false })
  await env.devchain.mine(1)
  assert.notEqual(await env.backend.tipHash(), hash, 'the new block differs')
  await env.devchain.reorg(1, { drop: [txid], mineAfter: 2 })
  assert.equal(await env.backend.transaction(txid), undefined)
  assert.equal((await wallet.balance()).totalSats, 0)
})

test('the devchain persists blocks and mempool across restarts', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'rpib-devchain-'))
  let chain = createDevchain({ dataDir: dir })
  try {
    await chain.start()
    const addr = 'bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080'
    const confirmedTx = await chain.faucet(addr, 12_345)
    await chain.mine(3)
    const pending = await chain.faucet(addr, 777)
    const tip = chain.chain.tip.hash
    await chain.stop()
    chain = createDevchain({ dataDir: dir })
    await chain.start()
    assert.equal(chain.chain.tip.hash, tip)
    assert.equal(chain.chain.state(confirmedTx).where, 'block')
    assert.equal(chain.chain.state(pending).where, 'mempool')
  } finally {
    await chain.stop()
    await rm(dir, { recursive: true, force: true })
  }
})

test('interval mining confirms mempool transactions without being asked', async () => {
  const chain = createDevchain({ mineIntervalMs: 50 })
  try {
    await chain.start()
    const txid = await chain.faucet('bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080', 5000)
    const deadline = Date.now() + 5000
    while (chain.chain.state(txid).where !== 'block' && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 20))
    assert.equal(chain.chain.state(txid).where, 'block')
  } finally {
    await chain.stop()
  }
})

test('address history pages through more than 25 confirmed transactions like Esplora', async () => {
  const { wallet } = await env.newWallet('pages')
  const target = wallet.addressAt(0, 0).address
  for (let i = 0; i < 30; i++) await env.devchain.faucet(target, 1000 + i)
  await env.devchain.mine(1)
  await env.devchain.faucet(target, 5000)
  const firstPage = (await (await fetch(`${env.devchain.url}/address/${target}/txs`)).json()) as unknown[]
  assert.equal(firstPage.length, 26, '1 mempool + 25 confirmed')
  const all = await env.backend.addressTransactions(target)
  assert.equal(all.length, 31)
  assert.equal(new Set(all.map((t) => t.txid)).size, 31)
  assert.equal((await wallet.balance()).totalSats, 30 * 1000 + 435 + 5000)
})
