import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, type AddressInfo } from 'node:net'
import { z } from 'zod'
import { defineRoute } from '../../src/api/contract.js'
import { configRoute, healthRoute, nodeRoute } from '../../src/api/routes/node.js'
import { connectToDaemon, createApiClient } from '../../src/cli/client.js'
import { RpibError } from '../../src/errors.js'
import { putItemRoute, startTestDaemon } from './fixture.js'

test('the typed client calls routes by their descriptors and validates what comes back', async () => {
  const d = await startTestDaemon()
  try {
    const { client, state } = await connectToDaemon(d.home)
    assert.equal(state.pid, process.pid)
    const node = await client.call(nodeRoute)
    assert.equal(node.apiUrl, client.baseUrl)
    assert.equal((await client.call(healthRoute)).status, 'ok')
    assert.equal((await client.call(configRoute)).home, d.home)
    const item = await client.call(putItemRoute, { params: { itemId: 'abc' }, query: {}, body: { count: 2 } })
    assert.deepEqual(item, { itemId: 'abc', count: 2, dryRun: false })
  } finally {
    await d.close()
  }
})

test('server problems become RpibErrors carrying the server’s code and one-line detail', async () => {
  const d = await startTestDaemon()
  try {
    const { client } = await connectToDaemon(d.home)
    await assert.rejects(
      client.call(putItemRoute, { params: { itemId: 'abc' }, query: {}, body: { count: 0 } }),
      (err: Error) => {
        assert.ok(err instanceof RpibError)
        assert.equal(err.code, 'ERR_VALIDATION')
        assert.match(err.message, /body\.count/)
        return true
      },
    )
    const wrongToken = createApiClient({ baseUrl: client.baseUrl, token: 'y'.repeat(43) })
    await assert.rejects(wrongToken.call(nodeRoute), { code: 'ERR_UNAUTHORIZED' })
    // a response that breaks the route's contract (here: a route the CLI knows differently) is refused
    const drifted = defineRoute({ ...healthRoute, response: z.object({ status: z.literal('degraded') }) })
    await assert.rejects(client.call(drifted), { code: 'ERR_API_RESPONSE' })
  } finally {
    await d.close()
  }
})

test('nothing listening is ERR_NO_DAEMON with a hint, not a stack trace', async () => {
  const srv = createServer()
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve))
  const port = (srv.address() as AddressInfo).port
  await new Promise((resolve) => srv.close(resolve)) // now nothing listens there
  const client = createApiClient({ baseUrl: `http://127.0.0.1:${port}`, token: 'z'.repeat(43) })
  await assert.rejects(client.call(nodeRoute), (err: Error) => {
    assert.ok(err instanceof RpibError)
    assert.equal(err.code, 'ERR_NO_DAEMON')
    assert.match(err.message, /start one with `rpib daemon`/)
    return true
  })
})
