import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { NodeProcess, type NodeProcessOptions } from '../lib/node-process.js'

/** Presence timing for tests: beats every 300 ms, offline after 1.5 s without one. */
export const FAST_PRESENCE = { presenceIntervalMs: 300, offlineAfterMs: 1500 }

/** Loopback-only p2p settings: TCP on 127.0.0.1, no mDNS, DHT, relay or autoNAT. */
export function loopbackP2p(bootstrap: string[] = []): Record<string, unknown> {
  return {
    listen: ['/ip4/127.0.0.1/tcp/0'],
    bootstrap,
    transports: { tcp: true, websockets: false },
    mdns: false,
    dht: false,
    relayClient: false,
    dcutr: false,
    autonat: false,
    // every peer is 127.0.0.1: without this, a node with 10+ peers graylists them all
    gossipsub: { heartbeatIntervalMs: 200, ipColocationWhitelist: ['127.0.0.1'] },
  }
}

export function sandboxId(): string {
  return `sandbox-${randomBytes(5).toString('hex')}`
}

/** A valid listing body (without version/status, which the node sets). */
export function sampleListing(
  deviceId: string,
  overrides: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    deviceId,
    name: `Pi ${deviceId}`,
    description: 'a Raspberry Pi 4 in a drawer',
    specs: {
      arch: 'arm64',
      cpuModel: 'Cortex-A72',
      cpuCores: 4,
      cpuScore: 150,
      memoryMb: 4096,
      diskFreeMb: 30_000,
      diskWriteMBps: 40,
      dockerVersion: '20.10.24',
      kernel: '6.1.0-rpi7',
    },
    satsPerHour: 100,
    minHours: 1,
    maxHours: 720,
    slots: 1,
    images: ['rpib/debian:bookworm'],
    limits: { cpus: 2000, memoryMb: 2048, diskMb: 10_000, pidsLimit: 256 },
    sshHostKey: 'SHA256:' + 'A'.repeat(43),
    relays: [],
    bitcoinNetwork: 'regtest',
    ...overrides,
  }
}

/** Polls `fn` until it returns something other than undefined/false; fails after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  fn: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs = 15_000,
  intervalMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await fn()
    if (value !== undefined && value !== false) return value
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, intervalMs))
  }
}

/** A set of market node processes sharing one temporary directory and network id. */
export class Cluster {
  readonly networkId = sandboxId()
  readonly nodes = new Map<string, NodeProcess>()
  private constructor(readonly dir: string) {}

  static async create(): Promise<Cluster> {
    return new Cluster(await mkdtemp(join(tmpdir(), 'rpib-market-')))
  }

  dataDir(name: string): string {
    return join(this.dir, name)
  }

  async start(
    name: string,
    bootstrap: string[],
    extra: Partial<NodeProcessOptions> = {},
  ): Promise<NodeProcess> {
    const node = await NodeProcess.start({
      dataDir: this.dataDir(name),
      networkId: this.networkId,
      p2p: loopbackP2p(bootstrap),
      market: FAST_PRESENCE,
      ...extra,
    })
    this.nodes.set(name, node)
    return node
  }

  get(name: string): NodeProcess {
    const node = this.nodes.get(name)
    if (node == null) throw new Error(`no node ${name}`)
    return node
  }

  async stop(name: string): Promise<void> {
    await this.nodes.get(name)?.stop()
    this.nodes.delete(name)
  }

  async destroy(): Promise<void> {
    await Promise.allSettled([...this.nodes.values()].map((n) => n.stop()))
    this.nodes.clear()
    await rm(this.dir, { recursive: true, force: true })
  }
}
