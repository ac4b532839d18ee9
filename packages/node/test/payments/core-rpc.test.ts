import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { createCoreRpcBackend } from '../../src/payments/core-rpc.js'
import { withDescriptorChecksum } from '../../src/payments/descriptor-checksum.js'
import { PaymentError } from '../../src/payments/errors.js'
import type { ChainBackend } from '../../src/payments/backend.js'

interface RecordedCall {
  method: string
  params: unknown[]
  wallet?: boolean
  result?: unknown
  error?: { code: number; message: string }
}
const fixture = JSON.parse(
  readFileSync(new URL('../../../test/fixtures/payments/core-rpc-regtest.json', import.meta.url), 'utf8'),
) as {
  address: string
  expect: {
    tipHeight: number
    tipHash: string
    confirmedTxid: string
    confirmedHeight: number
    confirmedVout: number
    mempoolTxid: string
    conflictedTxid: string
  }
  calls: RecordedCall[]
}

/** A stand-in bitcoind on 127.0.0.1 that answers only the recorded calls, checking auth and wallet path. */
let server: Server
let url = ''
const seen: Array<{ method: string; path: string }> = []
before(async () => {
  server = createServer((req, res) => {
    let body = ''
    req.on('data', (c: Buffer) => (body += c.toString()))
    req.on('end', () => {
      if (req.headers.authorization !== `Basic ${Buffer.from('alice:s3cret').toString('base64')}`) {
        res.writeHead(401).end()
        return
      }
      const rpc = JSON.parse(body) as { id: number; method: string; params: unknown[] }
      seen.push({ method: rpc.method, path: req.url ?? '' })
      const match = fixture.calls.find(
        (c) => c.method === rpc.method && JSON.stringify(c.params) === JSON.stringify(rpc.params),
      )
      const walletPath = req.url === '/wallet/rpib-watch'
      if (match == null || (match.wallet === true) !== walletPath) {
        res.writeHead(500, { 'content-type': 'application/json' })
        res.end(
          JSON.stringify({
            result: null,
            error: {
              code: -32601,
              message: `unrecorded ${rpc.method} ${JSON.stringify(rpc.params)} on ${req.url}`,
            },
            id: rpc.id,
          }),
        )
        return
      }
      // Core answers errors with HTTP 500 (or 404) and a JSON-RPC error body
      res.writeHead(match.error != null ? 500 : 200, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ result: match.result ?? null, error: match.error ?? null, id: rpc.id }))
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  url = `http://alice:s3cret@127.0.0.1:${(server.address() as AddressInfo).port}`
})
after(async () => {
  server.closeAllConnections()
  await new Promise((r) => server.close(r))
})

const backend = (): ChainBackend => createCoreRpcBackend({ url, network: 'regtest' })

test('BIP380 descriptor checksum matches the spec example', () => {
  assert.equal(withDescriptorChecksum('raw(deadbeef)'), 'raw(deadbeef)#89f8spxm')
})

test('tip height and hash', async () => {
  const b = backend()
  assert.equal(await b.tipHeight(), fixture.expect.tipHeight)
  assert.equal(await b.tipHash(), fixture.expect.tipHash)
})

test('watching an address creates the watch-only wallet and imports an addr() descriptor', async () => {
  seen.length = 0
  const b = backend()
  await b.watchAddresses([fixture.address])
  assert.deepEqual(
    seen.map((s) => s.method),
    ['listwallets', 'loadwallet', 'createwallet', 'importdescriptors'],
  )
  assert.equal(seen.at(-1)!.path, '/wallet/rpib-watch')
  await b.watchAddresses([fixture.address])
  assert.equal(seen.length, 4, 'an address is imported once')
})

test('address transactions: confirmed and mempool ones, never the conflicted one', async () => {
  const txs = await backend().addressTransactions(fixture.address)
  assert.deepEqual(
    txs.map((t) => t.txid),
    [fixture.expect.mempoolTxid, fixture.expect.confirmedTxid],
  )
  const confirmed = txs[1]!
  assert.equal(confirmed.status.confirmed, true)
  assert.equal(confirmed.status.blockHeight, fixture.expect.confirmedHeight)
  const out = confirmed.outputs[fixture.expect.confirmedVout]!
  assert.deepEqual([out.address, out.valueSats], [fixture.address, 30_000])
  assert.deepEqual(txs[0]!.status, { confirmed: false })
})

test('address UTXOs convert BTC amounts to exact satoshis', async () => {
  const utxos = await backend().addressUtxos(fixture.address)
  assert.deepEqual(
    utxos.map((u) => [u.txid, u.valueSats, u.status.confirmed, u.status.blockHeight]),
    [
      [fixture.expect.confirmedTxid, 30_000, true, fixture.expect.confirmedHeight],
      [fixture.expect.mempoolTxid, 20_000, false, undefined],
    ],
  )
})

test('fee estimate in sat/vB, with a fallback when Core has no estimate', async () => {
  const b = createCoreRpcBackend({ url, network: 'regtest', fallbackFeeRate: 3 })
  assert.equal(await b.feeRate(6), 13) // 0.00012345 BTC/kvB = 12.345 sat/vB, rounded up
  assert.equal(await b.feeRate(2), 3)
})

test('broadcast returns the txid or a typed rejection with Core reason', async () => {
  const b = backend()
  const hex = fixture.calls.find((c) => c.method === 'sendrawtransaction' && c.result != null)!
    .params[0] as string
  assert.equal(await b.broadcast(hex), fixture.expect.mempoolTxid)
  await assert.rejects(
    b.broadcast('0200'),
    (e: unknown) =>
      e instanceof PaymentError && e.code === 'ERR_TX_REJECTED' && /TX decode failed/.test(e.message),
  )
})

test('outspend, raw transactions and unknown txids', async () => {
  const b = backend()
  assert.deepEqual(await b.outspend(fixture.expect.confirmedTxid, fixture.expect.confirmedVout), {
    spent: false,
  })
  assert.deepEqual(await b.outspend(fixture.expect.conflictedTxid, 0), { spent: true })
  assert.match((await b.transactionHex(fixture.expect.confirmedTxid))!, /^02000000/)
  assert.equal(await b.transactionHex('00'.repeat(32)), undefined)
  const tx = await b.transaction(fixture.expect.confirmedTxid)
  assert.equal(tx?.status.blockHeight, fixture.expect.confirmedHeight)
})

test('wrong credentials and an unreachable node give typed errors', async () => {
  const wrong = createCoreRpcBackend({ url: url.replace('s3cret', 'nope'), network: 'regtest' })
  await assert.rejects(
    wrong.tipHeight(),
    (e: unknown) =>
      e instanceof PaymentError && e.code === 'ERR_BACKEND_UNREACHABLE' && /credentials/.test(e.message),
  )
  const down = createCoreRpcBackend({ url: 'http://u:p@127.0.0.1:9', network: 'regtest', timeoutMs: 1000 })
  await assert.rejects(
    down.tipHeight(),
    (e: unknown) => e instanceof PaymentError && e.code === 'ERR_BACKEND_UNREACHABLE',
  )
})
