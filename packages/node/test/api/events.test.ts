import { test } from 'node:test'
import assert from 'node:assert/strict'
import { request, type IncomingMessage } from 'node:http'
import { createApiClient } from '../../src/cli/client.js'
import type { DaemonEvent } from '../../src/api/events.js'
import { startTestDaemon } from './fixture.js'
import { waitFor } from './http.js'

/** Opens /api/events with node:http and collects the raw stream text. */
function openRawStream(port: number, token: string, headers: Record<string, string> = {}) {
  return new Promise<{ res: IncomingMessage; text: () => string; ended: Promise<void>; close: () => void }>(
    (resolve, reject) => {
      const req = request(
        {
          host: '127.0.0.1',
          port,
          path: '/api/events',
          headers: { authorization: `Bearer ${token}`, ...headers },
          agent: false,
        },
        (res) => {
          let text = ''
          res.setEncoding('utf8')
          res.on('data', (d: string) => (text += d))
          const ended = new Promise<void>((done) => res.on('close', () => done()))
          resolve({ res, text: () => text, ended, close: () => req.destroy() })
        },
      )
      req.on('error', reject)
      req.end()
    },
  )
}

test('SSE: a client receives published events, heartbeats, and a clean end at shutdown', async () => {
  const d = await startTestDaemon()
  let stream: Awaited<ReturnType<typeof openRawStream>> | undefined
  try {
    stream = await openRawStream(d.port, d.token)
    assert.equal(stream.res.statusCode, 200)
    assert.match(String(stream.res.headers['content-type']), /^text\/event-stream/)
    assert.equal(stream.res.headers['access-control-allow-origin'], undefined)
    const opened = stream
    await waitFor(() => (/: heartbeat /.test(opened.text()) ? true : undefined), 5000, 'a heartbeat')
    const published = d.daemon.events.publish('lease.state', { leaseId: 'l1', state: 'active' })
    const s = stream
    await waitFor(() => (s.text().includes(`id: ${published.id}\n`) ? true : undefined), 5000, 'the event')
    assert.match(
      s.text(),
      new RegExp(`id: ${published.id}\\nevent: lease\\.state\\ndata: \\{.*"leaseId":"l1".*\\}\\n\\n`),
    )
    await d.daemon.stop('test shutdown')
    await s.ended
    assert.match(s.text(), /event: daemon\.stopping\n/)
  } finally {
    stream?.close()
    await d.close()
  }
})

test('SSE: the typed client filters by type prefix and resumes from Last-Event-ID', async () => {
  const d = await startTestDaemon()
  const controller = new AbortController()
  try {
    const client = createApiClient({ baseUrl: `http://127.0.0.1:${d.port}`, token: d.token })
    const first = d.daemon.events.publish('invoice.state', { invoiceId: 'i1', state: 'seen' })
    d.daemon.events.publish('presence.beat', { peer: 'p' })
    const received: DaemonEvent[] = []
    const reading = (async () => {
      for await (const e of client.events({
        types: ['invoice.', 'lease.'],
        lastEventId: first.id - 1,
        signal: controller.signal,
      })) {
        received.push(e)
        if (received.length === 3) break
      }
    })()
    // replayed from the buffer: i1; live: the presence beat is filtered out, the lease event passes
    await waitFor(() => (received.length >= 1 ? true : undefined), 5000, 'the replayed event')
    d.daemon.events.publish('presence.beat', { peer: 'p' })
    d.daemon.events.publish('lease.state', { leaseId: 'l2', state: 'expired' })
    d.daemon.events.publish('invoice.state', { invoiceId: 'i1', state: 'confirmed' })
    await reading
    assert.deepEqual(
      received.map((e) => e.type),
      ['invoice.state', 'lease.state', 'invoice.state'],
    )
    assert.deepEqual(received[0]?.data, { invoiceId: 'i1', state: 'seen' })
  } finally {
    controller.abort()
    await d.close()
  }
})

test('SSE: a client that disconnects is unsubscribed', async () => {
  const d = await startTestDaemon()
  try {
    const before = d.daemon.events.subscriberCount
    const stream = await openRawStream(d.port, d.token)
    await waitFor(
      () => (d.daemon.events.subscriberCount === before + 1 ? true : undefined),
      5000,
      'the subscription',
    )
    stream.close()
    await stream.ended
    await waitFor(
      () => (d.daemon.events.subscriberCount === before ? true : undefined),
      5000,
      'the unsubscription',
    )
    // publishing after the disconnect must not throw or write to a closed socket
    d.daemon.events.publish('lease.state', { leaseId: 'gone' })
  } finally {
    await d.close()
  }
})

test('SSE: an event stream needs the token and refuses other origins', async () => {
  const d = await startTestDaemon()
  try {
    const anon = await openRawStream(d.port, 'not-the-token-not-the-token-not-the-token')
    assert.equal(anon.res.statusCode, 401)
    await anon.ended
    const cross = await openRawStream(d.port, d.token, { origin: 'http://evil.example' })
    assert.equal(cross.res.statusCode, 403)
    assert.equal(cross.res.headers['access-control-allow-origin'], undefined)
    await cross.ended
    assert.equal(d.daemon.events.subscriberCount, 0)
  } finally {
    await d.close()
  }
})
