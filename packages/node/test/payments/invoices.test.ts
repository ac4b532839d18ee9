import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { Psbt, Transaction, networks } from 'bitcoinjs-lib'
import { createInvoiceFileStore } from '../../src/payments/invoice-store.js'
import {
  createInvoiceService,
  invoicePaymentRequest,
  type InvoiceService,
} from '../../src/payments/invoice-service.js'
import type { ConfirmationPolicy } from '../../src/payments/invoice-state.js'
import { PaymentError } from '../../src/payments/errors.js'
import type { Wallet } from '../../src/payments/wallet.js'
import { paymentsEnv, waitFor, type PaymentsEnv } from './helpers/env.js'
import { join } from 'node:path'

let env: PaymentsEnv
let payer: Wallet
let provider: Wallet
let providerHome: string
let clock = Date.now()
const services: InvoiceService[] = []

before(async () => {
  env = await paymentsEnv()
  payer = (await env.newWallet('payer')).wallet
  const p = await env.newWallet('provider')
  provider = p.wallet
  providerHome = p.home
  for (let i = 0; i < 4; i++) await env.devchain.faucet((await payer.nextReceiveAddress()).address, 5_000_000)
  await env.devchain.mine(1)
})
after(async () => {
  for (const s of services) await s.stop()
  await env.close()
})

function service(
  policy: ConfirmationPolicy = { confirmationsRequired: 1, zeroConfMaxSats: 0 },
  dir = 'invoices',
) {
  const s = createInvoiceService({
    store: createInvoiceFileStore(join(providerHome, dir)),
    backend: env.backend,
    wallet: provider,
    policy,
    pollIntervalMs: 100,
    now: () => clock,
  })
  services.push(s)
  return s
}

test('pay an invoice from the built-in wallet: awaiting -> seen -> confirmed, with events', async () => {
  clock = Date.now()
  const svc = service()
  await svc.start()
  const transitions: string[] = []
  svc.on('status', ({ from, to }) => transitions.push(`${from}->${to}`))
  const inv = await svc.create({ amountSats: 40_000, expiresInMs: 60_000, label: 'lease 1' })
  const request = await invoicePaymentRequest(inv)
  assert.equal(request.uri, `bitcoin:${inv.address}?amount=0.0004&label=lease%201`)
  assert.match(request.svg, /^<svg/)
  assert.ok(request.terminal.length > 100)
  await payer.send({ to: inv.address, amountSats: 40_000, feeRate: 2 })
  await waitFor(() => (svc.get(inv.id).status === 'seen' ? true : undefined), 'seen')
  await env.devchain.mine(1)
  await waitFor(() => (svc.get(inv.id).status === 'confirmed' ? true : undefined), 'confirmed')
  assert.deepEqual(transitions, ['awaiting->seen', 'seen->confirmed'])
  const done = svc.get(inv.id)
  assert.equal(done.paid, true)
  assert.equal(done.receivedSats, 40_000)
  await svc.stop()
})

test('under-, over- and late payments end in the right state with the right amounts', async () => {
  clock = Date.now()
  const svc = service(undefined, 'invoices-2')
  const under = await svc.create({ amountSats: 30_000, expiresInMs: 1000 })
  const over = await svc.create({ amountSats: 30_000, expiresInMs: 1000 })
  const late = await svc.create({ amountSats: 30_000, expiresInMs: 1000 })
  await payer.send({ to: under.address, amountSats: 20_000, feeRate: 2 })
  await payer.send({ to: over.address, amountSats: 35_500, feeRate: 2 })
  await svc.poll()
  assert.equal(svc.get(under.id).status, 'seen', 'a partial payment before expiry can still be topped up')
  await env.devchain.mine(1)
  clock += 5000 // all three expire
  await svc.poll()
  const [u, o, l] = [svc.get(under.id), svc.get(over.id), svc.get(late.id)]
  assert.deepEqual([u.status, u.shortfallSats, u.paid], ['underpaid', 10_000, false])
  assert.deepEqual([o.status, o.excessSats, o.paid], ['overpaid', 5_500, true])
  assert.equal(l.status, 'expired')
  await payer.send({ to: late.address, amountSats: 30_000, feeRate: 2 })
  await svc.poll()
  assert.deepEqual([svc.get(late.id).status, svc.get(late.id).lateSats], ['paid-late', 30_000])
  await svc.stop()
})

test('a reorg that drops the confirming block moves the invoice back and is reported', async () => {
  clock = Date.now()
  const svc = service(undefined, 'invoices-3')
  const inv = await svc.create({ amountSats: 25_000, expiresInMs: 60_000 })
  const reorgs: Array<{ txid: string; fromConfirmations: number; toConfirmations: number }> = []
  svc.on('reorg', ({ txid, fromConfirmations, toConfirmations }) =>
    reorgs.push({ txid, fromConfirmations, toConfirmations }),
  )
  const { txid } = await payer.send({ to: inv.address, amountSats: 25_000, feeRate: 2 })
  await env.devchain.mine(1)
  await svc.poll()
  assert.equal(svc.get(inv.id).status, 'confirmed')
  await env.devchain.reorg(1)
  await svc.poll()
  assert.equal(svc.get(inv.id).status, 'seen')
  assert.equal(svc.get(inv.id).paid, false)
  assert.deepEqual(reorgs, [{ txid, fromConfirmations: 1, toConfirmations: 0 }])
  assert.equal(svc.get(inv.id).reorgs, 1)
  await env.devchain.mine(1)
  await svc.poll()
  assert.equal(svc.get(inv.id).status, 'confirmed')
  await svc.stop()
})

test('a double spend of a seen payment is detected and the invoice goes back to awaiting', async () => {
  clock = Date.now()
  const svc = service(undefined, 'invoices-4')
  const inv = await svc.create({ amountSats: 60_000, expiresInMs: 60_000 })
  const sent = await payer.send({ to: inv.address, amountSats: 60_000, feeRate: 2 })
  await svc.poll()
  assert.equal(svc.get(inv.id).status, 'seen')
  const events: Array<{ txid: string; replacedBy?: string }> = []
  svc.on('double-spend', ({ txid, replacedBy }) =>
    events.push({ txid, ...(replacedBy != null ? { replacedBy } : {}) }),
  )
  // the payer replaces the payment by fee, sending the same coins back to itself
  const original = Transaction.fromHex(sent.hex)
  const psbt = new Psbt({ network: networks.regtest })
  let inputTotal = 0n
  for (const input of original.ins) {
    const prevTxid = Buffer.from(Uint8Array.from(input.hash).reverse()).toString('hex')
    const prevOut = Transaction.fromHex((await env.backend.transactionHex(prevTxid))!).outs[input.index]!
    inputTotal += prevOut.value
    psbt.addInput({ hash: prevTxid, index: input.index, sequence: 0xfffffffd, witnessUtxo: prevOut })
  }
  psbt.addOutput({ address: payer.addressAt(0, 0).address, value: inputTotal - 5_000n })
  const signed = Psbt.fromBase64(await payer.signPsbt(psbt.toBase64()))
  signed.finalizeAllInputs()
  const replacement = await env.backend.broadcast(signed.extractTransaction().toHex())
  await svc.poll()
  assert.deepEqual(events, [{ txid: sent.txid, replacedBy: replacement }])
  const after = svc.get(inv.id)
  assert.equal(after.status, 'awaiting')
  assert.equal(after.receivedSats, 0)
  assert.deepEqual(
    after.doubleSpends.map((d) => d.replacedBy),
    [replacement],
  )
  await svc.stop()
})

test('0-conf is accepted up to the configured amount, and not above it', async () => {
  clock = Date.now()
  const svc = service({ confirmationsRequired: 2, zeroConfMaxSats: 50_000 }, 'invoices-5')
  const small = await svc.create({ amountSats: 50_000 })
  const big = await svc.create({ amountSats: 50_001 })
  await payer.send({ to: small.address, amountSats: 50_000, feeRate: 2 })
  await payer.send({ to: big.address, amountSats: 50_001, feeRate: 2 })
  await svc.poll()
  assert.equal(svc.get(small.id).status, 'confirmed')
  assert.equal(svc.get(big.id).status, 'seen')
  await env.devchain.mine(1)
  await svc.poll()
  assert.equal(svc.get(big.id).status, 'seen', 'one of two confirmations')
  await env.devchain.mine(1)
  await svc.poll()
  assert.equal(svc.get(big.id).status, 'confirmed')
  await svc.stop()
})

test('invoices persist across restarts and keep being watched; refunds go to the renter address', async () => {
  clock = Date.now()
  const first = service(undefined, 'invoices-6')
  const refundTo = payer.addressAt(0, 40).address
  const inv = await first.create({
    amountSats: 45_000,
    expiresInMs: 60_000,
    reference: 'offer-abc',
    refundAddress: refundTo,
  })
  await first.stop()
  await payer.send({ to: inv.address, amountSats: 50_000, feeRate: 2 })
  await env.devchain.mine(1)
  const second = service(undefined, 'invoices-6')
  await second.poll()
  const reloaded = second.get(inv.id)
  assert.equal(reloaded.reference, 'offer-abc')
  assert.deepEqual([reloaded.status, reloaded.excessSats], ['overpaid', 5_000])
  const { txid } = await second.refund(inv.id, reloaded.excessSats, { feeRate: 2 })
  await env.devchain.mine(1)
  const refundTx = await env.backend.transaction(txid)
  assert.ok(refundTx?.outputs.some((o) => o.address === refundTo && o.valueSats === 5_000))
  await assert.rejects(
    second.refund(inv.id, 45_001),
    (e: unknown) => e instanceof PaymentError && e.code === 'ERR_AMOUNT_INVALID',
  )
  const third = service(undefined, 'invoices-6')
  await third.poll()
  assert.deepEqual(
    third.get(inv.id).refunds.map((r) => r.txid),
    [txid],
  )
  await second.stop()
  await third.stop()
})

test('invoices created concurrently get distinct fresh addresses', async () => {
  const svc = service(undefined, 'invoices-8')
  const created = await Promise.all(Array.from({ length: 8 }, (_, i) => svc.create({ amountSats: 1000 + i })))
  assert.equal(new Set(created.map((i) => i.address)).size, 8)
  assert.equal(new Set(created.map((i) => i.addressIndex)).size, 8)
  await svc.stop()
})

test('bad invoice requests are refused with typed errors', async () => {
  const svc = service(undefined, 'invoices-7')
  await assert.rejects(
    svc.create({ amountSats: 0 }),
    (e: unknown) => e instanceof PaymentError && e.code === 'ERR_AMOUNT_INVALID',
  )
  await assert.rejects(
    svc.create({ amountSats: 1.5 }),
    (e: unknown) => e instanceof PaymentError && e.code === 'ERR_AMOUNT_INVALID',
  )
  await assert.rejects(
    svc.create({ amountSats: 1000, refundAddress: 'bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu' }),
    (e: unknown) => e instanceof PaymentError && e.code === 'ERR_ADDRESS_NETWORK',
  )
  assert.throws(
    () => svc.get('ffffffffffff'),
    (e: unknown) => e instanceof PaymentError && e.code === 'ERR_INVOICE_UNKNOWN',
  )
  await svc.stop()
})
