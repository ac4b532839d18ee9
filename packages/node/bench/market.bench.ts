/**
 * Market benchmark (`npm run bench -- market`):
 *  - listing propagation across 20 node processes on loopback (publish → present in each index),
 *    next to the raw gossipsub delivery among the same 20 nodes (the floor it sits on);
 *  - start → market ready, and idle RSS of one node process;
 *  - query time over a 10,000-listing index;
 *  - fresh-node sync time of a replica (BENCH_SYNC_LISTINGS listings, default 1,000).
 * Env: BENCH_NODES (20), BENCH_PUBLISHES (10), BENCH_SYNC_LISTINGS (1000).
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { createMarketNode } from '../src/market/market-node.js'
import { MarketIndex } from '../src/market/market-index.js'
import { keyOfListing, signListing } from '../src/market/records.js'
import { randomSandboxNetworkId } from '../src/p2p/network-id.js'
import { loopbackP2p, sampleListing } from '../test/market/fixtures.js'
import { printTable, type BenchRow } from './table.js'

const NODES = Number(process.env.BENCH_NODES ?? 20)
const PUBLISHES = Number(process.env.BENCH_PUBLISHES ?? 10)
const SYNC_LISTINGS = Number(process.env.BENCH_SYNC_LISTINGS ?? 1000)
const CHILD = fileURLToPath(new URL('../test/market/node-child.js', import.meta.url))

/** A node process driven over JSON lines (the same child the cross-process tests use). */
class Child {
  private next = 1
  private readonly waiting = new Map<
    number,
    (msg: { ok: boolean; result?: unknown; error?: { message: string } }) => void
  >()
  readyMs = 0
  peerId = ''
  addresses: string[] = []
  private constructor(private readonly proc: ChildProcessWithoutNullStreams) {}

  static start(
    dataDir: string,
    networkId: string,
    bootstrap: string[],
    nodeFlags: string[] = [],
  ): Promise<Child> {
    const options = {
      p2p: loopbackP2p(bootstrap),
      market: { presenceIntervalMs: 5000, offlineAfterMs: 20_000 },
    }
    const proc = spawn(process.execPath, [...nodeFlags, CHILD, dataDir, networkId, JSON.stringify(options)], {
      stdio: 'pipe',
    })
    const child = new Child(proc)
    proc.stderr.resume()
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('node not ready in 120 s')), 120_000)
      proc.once('exit', (code) => reject(new Error(`node exited with ${code}`)))
      createInterface({ input: proc.stdout }).on('line', (line) => {
        const msg = JSON.parse(line) as {
          event?: string
          id?: number
          peerId: string
          addresses: string[]
          readyMs: number
          ok: boolean
        }
        if (msg.event === 'ready') {
          Object.assign(child, { peerId: msg.peerId, addresses: msg.addresses, readyMs: msg.readyMs })
          clearTimeout(timer)
          resolve(child)
        } else if (msg.id != null) {
          this.deliver(child, msg.id, msg)
        }
      })
    })
  }

  private static deliver(child: Child, id: number, msg: { ok: boolean }): void {
    child.waiting.get(id)?.(msg)
    child.waiting.delete(id)
  }

  request<T>(cmd: string, args: Record<string, unknown> = {}): Promise<T> {
    const id = this.next++
    return new Promise((resolve, reject) => {
      this.waiting.set(id, (msg) =>
        msg.ok ? resolve(msg.result as T) : reject(new Error(msg.error?.message)),
      )
      this.proc.stdin.write(JSON.stringify({ id, cmd, args }) + '\n')
    })
  }

  async stop(): Promise<void> {
    const exited = new Promise((resolve) => this.proc.once('exit', resolve))
    this.proc.stdin.end(JSON.stringify({ id: 0, cmd: 'stop' }) + '\n')
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), 20_000)
    await exited
    clearTimeout(timer)
  }
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN
}

async function propagation(dir: string, rows: BenchRow[]): Promise<void> {
  const networkId = randomSandboxNetworkId()
  const nodes: Child[] = []
  try {
    const seed = await Child.start(join(dir, 'p0'), networkId, [])
    nodes.push(seed)
    // start the rest a few at a time: 2 cores
    for (let i = 1; i < NODES; i += 4) {
      const batch = []
      for (let j = i; j < Math.min(NODES, i + 4); j++)
        batch.push(Child.start(join(dir, `p${j}`), networkId, seed.addresses))
      nodes.push(...(await Promise.all(batch)))
    }
    await Promise.all(
      nodes.map((n, i) => n.request('dial', { address: nodes[(i + 1) % nodes.length]!.addresses[0] })),
    )
    await Promise.all(
      nodes.map((n, i) => n.request('dial', { address: nodes[(i + 7) % nodes.length]!.addresses[0] })),
    )
    const topic = `/rpib/${networkId}/bench/raw`
    await Promise.all(nodes.map((n) => n.request('benchSubscribe', { topic })))
    await new Promise((resolve) => setTimeout(resolve, 3000)) // let the meshes form

    const raw: number[] = []
    for (let k = 0; k < PUBLISHES; k++) {
      const sender = nodes[(k * 3) % nodes.length]!
      const { at } = await sender.request<{ at: number }>('benchPublish', { topic, id: `m${k}` })
      await new Promise((resolve) => setTimeout(resolve, 1000))
      for (const n of nodes) {
        if (n === sender) continue
        const arrivals = await n.request<Record<string, number>>('benchArrivals', { topic })
        if (arrivals[`m${k}`] != null) raw.push(arrivals[`m${k}`]! - at)
      }
    }
    const listing: number[] = []
    const update: number[] = []
    let missed = 0
    const missedBy = new Set<number>()
    // round 0: first listing of each sender (receivers must also fetch the writer's OrbitDB identity);
    // round 1: an update of the same listing (steady state)
    for (const round of [0, 1]) {
      for (let k = 0; k < PUBLISHES; k++) {
        const sender = nodes[(k * 3 + 1) % nodes.length]!
        const started = Date.now()
        const pub = await sender.request<{ key: string; version: number }>('publish', {
          listing: sampleListing(`bench-${k}`, { satsPerHour: 100 + round }),
        })
        const receivers = nodes.filter((n) => n !== sender)
        const seen = await Promise.allSettled(
          receivers.map((n) =>
            n.request<{ at: number }>('awaitListing', {
              key: pub.key,
              version: pub.version,
              timeoutMs: 15_000,
            }),
          ),
        )
        seen.forEach((s, r) => {
          if (s.status === 'fulfilled') (round === 0 ? listing : update).push(s.value.at - started)
          else {
            missed++
            missedBy.add(nodes.indexOf(receivers[r]!))
          }
        })
      }
    }
    const readies = nodes.map((n) => n.readyMs)
    rows.push(
      {
        metric: `raw gossipsub, ${NODES} nodes, p50`,
        value: percentile(raw, 50),
        unit: 'ms',
        goal: 'baseline',
      },
      {
        metric: `raw gossipsub, ${NODES} nodes, p99`,
        value: percentile(raw, 99),
        unit: 'ms',
        goal: 'baseline',
      },
      { metric: `raw gossipsub delivered`, value: `${raw.length}/${PUBLISHES * (NODES - 1)}`, unit: 'msgs' },
      {
        metric: 'listing arrivals (missed within 15 s)',
        value: `${listing.length} (${missed})`,
        unit: 'indexes',
      },
      {
        metric: 'nodes that missed a listing (connections)',
        value:
          missedBy.size === 0
            ? '-'
            : (
                await Promise.all(
                  [...missedBy].map(
                    async (i) =>
                      `p${i} (${(await nodes[i]!.request<{ connections: number }>('stats')).connections})`,
                  ),
                )
              ).join(' '),
        unit: '',
      },
      {
        metric: `listing propagation, ${NODES} nodes, p50`,
        value: percentile(listing, 50),
        unit: 'ms',
        goal: '≤ 150',
      },
      {
        metric: `listing propagation, ${NODES} nodes, p99`,
        value: percentile(listing, 99),
        unit: 'ms',
        goal: '≤ 500',
      },
      {
        metric: `listing update propagation, ${NODES} nodes, p50`,
        value: percentile(update, 50),
        unit: 'ms',
        goal: '≤ 150',
      },
      {
        metric: `listing update propagation, ${NODES} nodes, p99`,
        value: percentile(update, 99),
        unit: 'ms',
        goal: '≤ 500',
      },
      {
        metric: `start → market ready, median of ${NODES} (batches of 4)`,
        value: percentile(readies, 50),
        unit: 'ms',
        goal: '≤ 1000',
      },
    )
    await new Promise((resolve) => setTimeout(resolve, 5000))
    const stats = await nodes[5]!.request<{ rssBytes: number }>('stats')
    rows.push({
      metric: `idle RSS of one node (${PUBLISHES} listings, ${NODES} peers)`,
      value: stats.rssBytes / 2 ** 20,
      unit: 'MB',
      goal: '≤ 100',
    })
  } finally {
    await Promise.allSettled(nodes.map((n) => n.stop()))
  }
}

async function singleStart(dir: string, rows: BenchRow[]): Promise<void> {
  const networkId = randomSandboxNetworkId()
  const first = await Child.start(join(dir, 'solo'), networkId, [])
  await first.stop()
  const again = await Child.start(join(dir, 'solo'), networkId, [])
  await new Promise((resolve) => setTimeout(resolve, 3000))
  const stats = await again.request<{ rssBytes: number }>('stats')
  await again.stop()
  // a small young generation trades a little GC time for a much smaller heap (what a Pi would run)
  const lean = await Child.start(join(dir, 'solo'), networkId, [], ['--max-semi-space-size=1'])
  await new Promise((resolve) => setTimeout(resolve, 3000))
  const leanStats = await lean.request<{ rssBytes: number }>('stats')
  await lean.stop()
  rows.push(
    { metric: 'machine load average (1 min) at start', value: loadavg()[0]!, unit: '', goal: '2 cores' },
    { metric: 'start → market ready, fresh data dir', value: first.readyMs, unit: 'ms', goal: '≤ 1000' },
    { metric: 'start → market ready, existing data dir', value: again.readyMs, unit: 'ms', goal: '≤ 1000' },
    { metric: 'idle RSS of one node, alone', value: stats.rssBytes / 2 ** 20, unit: 'MB', goal: '≤ 100' },
    {
      metric: 'idle RSS alone, --max-semi-space-size=1',
      value: leanStats.rssBytes / 2 ** 20,
      unit: 'MB',
      goal: '≤ 100',
    },
  )
}

async function signMany(count: number, keys: PrivateKey[]): Promise<Uint8Array[]> {
  const out: Uint8Array[] = []
  for (let i = 0; i < count; i++) {
    const body = {
      ...sampleListing(`d-${i}`),
      satsPerHour: 1 + ((i * 7919) % 1000),
      version: 1,
      status: 'listed' as const,
    }
    body.specs = {
      ...body.specs,
      memoryMb: 256 * (1 + (i % 32)),
      cpuCores: 1 + (i % 16),
      arch: i % 3 === 0 ? 'amd64' : 'arm64',
    }
    out.push((await signListing(body, keys[i % keys.length]!)).bytes)
  }
  return out
}

async function queryTime(rows: BenchRow[]): Promise<void> {
  const keys = await Promise.all(Array.from({ length: 100 }, () => generateKeyPair('Ed25519')))
  const index = new MarketIndex({ offlineAfterMs: 60_000 })
  const { verifyListing } = await import('../src/market/records.js')
  for (const bytes of await signMany(10_000, keys)) {
    const checked = await verifyListing(bytes)
    if (checked.ok) index.upsert(keyOfListing(checked.record), checked.record)
  }
  for (const k of keys) index.markSeen(peerIdFromPrivateKey(k).toString(), Date.now())
  const query = {
    presence: 'any' as const,
    arch: 'arm64',
    minMemoryMb: 2048,
    maxSatsPerHour: 800,
    sort: 'price' as const,
    limit: 50,
  }
  for (let i = 0; i < 20; i++) index.query(query) // warm up
  const times: number[] = []
  for (let i = 0; i < 100; i++) {
    const t = performance.now()
    index.query(query)
    times.push(performance.now() - t)
  }
  rows.push(
    {
      metric: 'query over 10,000 listings, filtered + sorted, p50',
      value: percentile(times, 50),
      unit: 'ms',
      goal: '≤ 50',
    },
    { metric: 'query over 10,000 listings, p99', value: percentile(times, 99), unit: 'ms', goal: '≤ 50' },
  )
}

async function syncTime(dir: string, rows: BenchRow[]): Promise<void> {
  const networkId = randomSandboxNetworkId()
  const keys = await Promise.all(
    Array.from({ length: Math.ceil(SYNC_LISTINGS / 1000) }, () => generateKeyPair('Ed25519')),
  )
  const seeder = await createMarketNode({
    dataDir: join(dir, 'seeder'),
    networkId,
    p2p: loopbackP2p(),
    market: { maxListingsPerProvider: 1024 },
  })
  try {
    const t0 = performance.now()
    for (const bytes of await signMany(SYNC_LISTINGS, keys)) await seeder.importListing(bytes)
    const writeMs = performance.now() - t0
    const fresh = await Child.start(join(dir, 'fresh'), networkId, [seeder.addresses()[0]!])
    const t1 = Date.now()
    let size = 0
    for (let i = 0; i < 6000; i++) {
      size = (await fresh.request<{ listings: { keys: number } }>('stats')).listings.keys
      if (size >= SYNC_LISTINGS) break
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    const syncMs = Date.now() - t1
    const stats = await fresh.request<{ rssBytes: number }>('stats')
    await fresh.stop()
    rows.push(
      { metric: `write ${SYNC_LISTINGS} listings into one store`, value: writeMs, unit: 'ms' },
      {
        metric: `fresh-node sync of ${SYNC_LISTINGS} listings (${size} arrived)`,
        value: syncMs,
        unit: 'ms',
        goal: '≤ 20000 (10k)',
      },
      { metric: `RSS after syncing ${SYNC_LISTINGS} listings`, value: stats.rssBytes / 2 ** 20, unit: 'MB' },
    )
  } finally {
    await seeder.stop()
  }
}

const dir = await mkdtemp(join(tmpdir(), 'rpib-bench-market-'))
const rows: BenchRow[] = []
try {
  await singleStart(dir, rows)
  await queryTime(rows)
  await propagation(dir, rows)
  await syncTime(dir, rows)
} finally {
  printTable('market (loopback, separate node processes)', rows)
  await rm(dir, { recursive: true, force: true })
}
process.exit(0)
