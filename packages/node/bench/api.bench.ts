// Local API: request latency and throughput over loopback, SSE fan-out latency, and daemon start/stop
// time (API only, no market), measured in-process with the real Fastify server.
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { request, Agent } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { resolveConfig } from '../src/config/config.js'
import { createDaemon } from '../src/daemon.js'
import { createJsonLogger } from '../src/daemon/json-log.js'
import { printTable, type BenchRow } from './table.js'

const silent = createJsonLogger({ level: 'error', stream: new Writable({ write: (_c, _e, cb) => cb() }) })
const config = resolveConfig([{ label: 'bench', layer: { api: { port: 0, sseHeartbeatSeconds: 60 } } }])

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN
}

function get(port: number, path: string, token: string, agent: Agent): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, path, agent, headers: { authorization: `Bearer ${token}` } },
      (res) => {
        res.resume()
        res.on('end', () => resolve(res.statusCode ?? 0))
      },
    )
    req.on('error', reject)
    req.end()
  })
}

async function main(): Promise<void> {
  const rows: BenchRow[] = []
  const home = await mkdtemp(join(tmpdir(), 'rpib-bench-api-'))
  const t0 = performance.now()
  const daemon = createDaemon({ home, config }, { log: silent, services: () => [] })
  const { apiUrl } = await daemon.start()
  rows.push({
    metric: 'daemon start (first run: identity + token)',
    value: performance.now() - t0,
    unit: 'ms',
  })
  const port = Number(new URL(apiUrl).port)
  const token = (await readFile(join(home, 'api-token'), 'utf8')).trim()
  const agent = new Agent({ keepAlive: true, maxSockets: 16 })
  try {
    for (let i = 0; i < 200; i++) await get(port, '/api/node', token, agent) // warm-up

    const latencies: number[] = []
    for (let i = 0; i < 2000; i++) {
      const s = performance.now()
      const status = await get(port, '/api/node', token, agent)
      if (status !== 200) throw new Error(`status ${status}`)
      latencies.push(performance.now() - s)
    }
    latencies.sort((a, b) => a - b)
    rows.push({
      metric: 'GET /api/node latency p50 (sequential)',
      value: percentile(latencies, 50),
      unit: 'ms',
      goal: '< 5',
    })
    rows.push({
      metric: 'GET /api/node latency p99 (sequential)',
      value: percentile(latencies, 99),
      unit: 'ms',
    })

    const total = 5000
    const s = performance.now()
    let next = 0
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next < total) {
          next++
          await get(port, '/api/node', token, agent)
        }
      }),
    )
    rows.push({
      metric: 'GET /api/node throughput (16 concurrent)',
      value: (total / (performance.now() - s)) * 1000,
      unit: 'req/s',
    })

    const denied: number[] = []
    for (let i = 0; i < 500; i++) {
      const d0 = performance.now()
      await get(port, '/api/node', 'wrong-token-wrong-token-wrong-token-xx', agent)
      denied.push(performance.now() - d0)
    }
    denied.sort((a, b) => a - b)
    rows.push({ metric: '401 refusal latency p50', value: percentile(denied, 50), unit: 'ms' })

    // SSE fan-out: 50 clients, time from publish to the last client receiving the event
    const clients = 50
    const streams = await Promise.all(
      Array.from(
        { length: clients },
        () =>
          new Promise<{ close: () => void; waitFor: (id: number) => Promise<void> }>((resolve, reject) => {
            const req = request(
              {
                host: '127.0.0.1',
                port,
                path: '/api/events',
                agent: false,
                headers: { authorization: `Bearer ${token}` },
              },
              (res) => {
                let buf = ''
                const waiters = new Map<number, () => void>()
                res.setEncoding('utf8')
                res.on('data', (d: string) => {
                  buf += d
                  for (const m of buf.matchAll(/^id: (\d+)$/gm)) {
                    const id = Number(m[1])
                    waiters.get(id)?.()
                    waiters.delete(id)
                  }
                  buf = buf.slice(buf.lastIndexOf('\n\n') + 1)
                })
                resolve({
                  close: () => req.destroy(),
                  waitFor: (id) => new Promise<void>((done) => waiters.set(id, done)),
                })
              },
            )
            req.on('error', reject)
            req.end()
          }),
      ),
    )
    while (daemon.events.subscriberCount < clients) await new Promise((r) => setTimeout(r, 10))
    const fanout: number[] = []
    for (let i = 0; i < 100; i++) {
      const nextId = daemon.events.since(0).at(-1)?.id ?? 0
      const waits = streams.map((c) => c.waitFor(nextId + 1))
      const f0 = performance.now()
      daemon.events.publish('lease.state', { leaseId: `l${i}`, state: 'active' })
      await Promise.all(waits)
      fanout.push(performance.now() - f0)
    }
    fanout.sort((a, b) => a - b)
    rows.push({
      metric: `SSE event to all ${clients} clients p50`,
      value: percentile(fanout, 50),
      unit: 'ms',
      goal: '< 50',
    })
    rows.push({
      metric: `SSE event to all ${clients} clients p99`,
      value: percentile(fanout, 99),
      unit: 'ms',
    })
    for (const c of streams) c.close()
    rows.push({
      metric: 'daemon RSS after the run',
      value: process.memoryUsage().rss / 1024 / 1024,
      unit: 'MiB',
    })
  } finally {
    agent.destroy()
    const s0 = performance.now()
    await daemon.stop('bench done')
    rows.push({ metric: 'daemon stop', value: performance.now() - s0, unit: 'ms' })
    await rm(home, { recursive: true, force: true })
  }
  printTable('Local API (Fastify on 127.0.0.1, token auth, in-process)', rows)
}

await main()
