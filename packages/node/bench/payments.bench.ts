import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Psbt } from 'bitcoinjs-lib'
import { DevChain } from '../src/payments/devchain/chain.js'
import { createDevchain } from '../src/payments/devchain/server.js'
import { createEsploraBackend } from '../src/payments/esplora.js'
import { createInvoiceFileStore } from '../src/payments/invoice-store.js'
import { createInvoiceService } from '../src/payments/invoice-service.js'
import { createWallet, openWallet } from '../src/payments/wallet.js'
import { printTable, type BenchRow } from './table.js'

// Payments: devchain validation throughput, wallet sync/send over the Esplora API on loopback,
// invoice polling cost, and the seed-unlock (scrypt) cost a user pays on every signing command.
const tmp = await mkdtemp(join(tmpdir(), 'rpib-bench-pay-'))
const devchain = createDevchain({ port: 0 })
const rows: BenchRow[] = []
try {
  await devchain.start()
  const backend = createEsploraBackend({ url: devchain.url })
  const passphrase = 'bench passphrase'

  let t = performance.now()
  await createWallet({ home: join(tmp, 'payer'), network: 'regtest', passphrase })
  rows.push({
    metric: 'create wallet (scrypt N=2^15 + AES-GCM seal)',
    value: performance.now() - t,
    unit: 'ms',
  })
  t = performance.now()
  const payer = await openWallet({ home: join(tmp, 'payer'), backend, passphrase })
  rows.push({
    metric: 'unlock wallet (scrypt + BIP32 derivation)',
    value: performance.now() - t,
    unit: 'ms',
    goal: '< 1000',
  })

  // fund 50 receive addresses so the payer has many UTXOs to select from
  const utxoCount = 50
  for (let i = 0; i < utxoCount; i++) await devchain.faucet(payer.addressAt(0, i).address, 100_000 + i)
  await devchain.mine(1)
  t = performance.now()
  const snap = await payer.sync()
  rows.push({
    metric: `wallet sync, ${utxoCount} used addresses (Esplora, loopback)`,
    value: performance.now() - t,
    unit: 'ms',
    goal: '< 2000',
  })
  if (snap.utxos.length !== utxoCount)
    throw new Error(`expected ${utxoCount} utxos, got ${snap.utxos.length}`)

  t = performance.now()
  const draft = await payer.createPsbt({
    to: payer.addressAt(0, 200).address,
    amountSats: 2_500_000,
    feeRate: 2,
  })
  const signed = Psbt.fromBase64(await payer.signPsbt(draft.psbtBase64))
  rows.push({
    metric: `sync + coin selection + PSBT + sign (${signed.inputCount} inputs)`,
    value: performance.now() - t,
    unit: 'ms',
  })

  // devchain validation throughput: a chain of signed single-input spends
  const sends = 100
  t = performance.now()
  await createWallet({ home: join(tmp, 'spender'), network: 'regtest', passphrase })
  const fast = await openWallet({ home: join(tmp, 'spender'), backend, passphrase })
  for (let i = 0; i < sends; i++) await devchain.faucet(fast.addressAt(0, i % 20).address, 50_000)
  const faucetMs = performance.now() - t
  rows.push({
    metric: 'devchain faucet tx (build, sign, validate, accept)',
    value: faucetMs / sends,
    unit: 'ms/tx',
  })
  const hexes = devchain.chain.mempoolHexes()
  t = performance.now()
  await devchain.mine(1)
  rows.push({ metric: `mine a block of ${hexes.length} txs`, value: performance.now() - t, unit: 'ms' })

  // replaying the same signed transactions measures pure validation (signature checks dominate)
  t = performance.now()
  const replay = new DevChain()
  let txCount = 0
  for (const b of devchain.chain.blockHexes) {
    replay.replayBlock(b.time, b.txs)
    txCount += b.txs.length - 1
  }
  const replayMs = performance.now() - t
  rows.push({
    metric: `devchain validation (replay of ${txCount} txs)`,
    value: (txCount / replayMs) * 1000,
    unit: 'tx/s',
    goal: '> 100',
  })

  // invoice polling: 100 open invoices, one paid
  await createWallet({ home: join(tmp, 'provider'), network: 'regtest', passphrase })
  const providerWallet = await openWallet({ home: join(tmp, 'provider'), backend })
  const svc = createInvoiceService({
    store: createInvoiceFileStore(join(tmp, 'provider')),
    backend,
    wallet: providerWallet,
  })
  const invoiceCount = 100
  t = performance.now()
  const invoices = []
  for (let i = 0; i < invoiceCount; i++) invoices.push(await svc.create({ amountSats: 10_000 + i }))
  rows.push({
    metric: 'create invoice (fresh address + persist)',
    value: (performance.now() - t) / invoiceCount,
    unit: 'ms',
  })
  await payer.send({ to: invoices[0]!.address, amountSats: 10_000, feeRate: 2 })
  t = performance.now()
  await svc.poll()
  rows.push({
    metric: `invoice poll, ${invoiceCount} open invoices`,
    value: performance.now() - t,
    unit: 'ms',
    goal: '< 2000',
  })
  if (svc.get(invoices[0]!.id).status !== 'seen') throw new Error('the paid invoice was not seen')
  await svc.stop()
  rows.push({ metric: 'peak RSS', value: process.memoryUsage().rss / 1e6, unit: 'MB' })
  printTable('payments (devchain on 127.0.0.1, Esplora backend)', rows)
} finally {
  await devchain.stop()
  await rm(tmp, { recursive: true, force: true })
}
