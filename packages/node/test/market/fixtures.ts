import type { ListingInput } from '../../src/market/market-node.js'

/** A valid listing body for tests; override what the test is about. */
export function sampleListing(deviceId: string, overrides: Partial<ListingInput> = {}): ListingInput {
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

/** p2p settings for loopback tests: TCP on 127.0.0.1 only, no mDNS/DHT/relay/autoNAT. */
export function loopbackP2p(bootstrap: string[] = []): {
  listen: string[]
  bootstrap: string[]
  transports: { tcp: boolean; websockets: boolean }
  mdns: boolean
  dht: boolean
  relayClient: boolean
  dcutr: boolean
  autonat: boolean
  gossipsub: { heartbeatIntervalMs: number; ipColocationWhitelist: string[] }
} {
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

/** Polls `fn` until it returns a value other than undefined/false, or fails after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  fn: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs = 10_000,
  intervalMs = 25,
): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await fn()
    if (value !== undefined && value !== false) return value
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, intervalMs))
  }
}
