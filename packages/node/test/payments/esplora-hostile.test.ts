import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { createEsploraBackend } from '../../src/payments/esplora.js'
import { PaymentError } from '../../src/payments/errors.js'
import { createInvoiceFileStore } from '../../src/payments/invoice-store.js'
import { createInvoiceService } from '../../src/payments/invoice-service.js'
import { openWallet } from '../../src/payments/wallet.js'
import { logger } from '../../src/log.js'
import { paymentsEnv, waitFor, type PaymentsEnv } from './helpers/env.js'

/** An "Esplora" that answers every path with something wrong. */
let server: Server
let url = ''
const answers: Record<string, { status: number; body: string }> = {
  '/blocks/tip/height': { status: 200, body: 'not a number' },
  '/blocks/tip/hash': { status: 200, body: '<html>' },
  '/fee-estimates': { status: 200, body: '{"1": "fast"}' },
  ['/tx/' + 'aa'.repeat(32)]: { status: 200, body: '{"txid": 5}' },
  ['/tx/' + 'bb'.repeat(32)]: { status: 200, body: '{{{' },
  '/address/bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080/txs': { status: 200, body: '[{"txid":"zz"}]' },
  '/address/bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080/utxo': { status: 503, body: 'overloaded' },
}
before(async () => {
  server = createServer((req, res) => {
    const a = answers[req.url ?? ''] ?? { status: 404, body: 'Not found' }
    res.writeHead(a.status).end(a.body)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
})
after(async () => {
  server.closeAllConnections()
  await new Promise((r) => server.close(r))
})

const isResponseError = (e: unknown) => e instanceof PaymentError && e.code === 'ERR_BACKEND_RESPONSE'

test('malformed Esplora answers become ERR_BACKEND_RESPONSE, never bad data', async () => {
  const b = createEsploraBackend({ url })
  await assert.rejects(b.tipHeight(), isResponseError)
  await assert.rejects(b.tipHash(), isResponseError)
  await assert.rejects(b.feeRate(2), isResponseError)
  await assert.rejects(b.transaction('aa'.repeat(32)), isResponseError)
  await assert.rejects(b.transaction('bb'.repeat(32)), isResponseError)
  await assert.rejects(b.addressTransactions('bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080'), isResponseError)
  await assert.rejects(b.addressUtxos('bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080'), isResponseError)
  assert.equal(await b.transaction('cc'.repeat(32)), undefined, '404 means unknown')
})

let env: PaymentsEnv | undefined
after(async () => {
  await env?.close()
})

test('the invoice watcher survives its backend disappearing and loses nothing', async () => {
  env = await paymentsEnv()
  const { home, wallet } = await env.newWallet('provider')
  const store = createInvoiceFileStore(join(home, 'inv'))
  // a logger that counts the background poll failures the service reports
  const failures: string[] = []
  const log = Object.assign(logger('rpib:test-invoices'), {
    error: (_f: string, ...args: unknown[]) => failures.push(String(args[0])),
  })
  const svc = createInvoiceService({ store, backend: env.backend, wallet, pollIntervalMs: 50, logger: log })
  await svc.start()
  const inv = await svc.create({ amountSats: 10_000 })
  await env.devchain.stop() // the backend goes away while the service keeps polling
  await assert.rejects(
    svc.poll(),
    (e: unknown) => e instanceof PaymentError && e.code === 'ERR_BACKEND_UNREACHABLE',
  )
  await waitFor(() => (failures.length >= 2 ? true : undefined), 'two failed background polls')
  assert.match(failures[0]!, /unreachable/)
  await svc.stop()
  assert.deepEqual(
    (await store.load()).map((i) => [i.id, i.status]),
    [[inv.id, 'awaiting']],
  )
  const reopened = await openWallet({ home, backend: env.backend })
  assert.equal(reopened.file.nextReceiveIndex, 1)
})
