import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { decodeRecord, encodeRecord, listingKey, recordId, signRecord, verifyRecord } from '@rpib/protocol'
import type { ListingBody } from '@rpib/protocol'
import { printTable } from './table.js'

// Protocol hot paths: every listing a renter replicates is verified once; presence beats are verified on
// every gossip message. Goal: a ~1 KB listing verifies in well under a millisecond.
const key = await generateKeyPair('Ed25519')
const provider = peerIdFromPrivateKey(key).toString()
const body: ListingBody = {
  deviceId: 'pi-kitchen',
  version: 12,
  status: 'listed',
  name: 'Raspberry Pi 4 (4 GB) on home fibre',
  description:
    'Quiet Raspberry Pi 4 with 4 GB of RAM and a USB 3 SSD, on a 300/100 Mbit fibre line in Lisbon. ' +
    'Good for small web services, bots, CI runners and learning Linux. Debian bookworm or busybox images. '.repeat(
      2,
    ),
  specs: {
    arch: 'arm64',
    cpuModel: 'Cortex-A72',
    cpuCores: 4,
    cpuScore: 180,
    memoryMb: 3792,
    diskFreeMb: 48_213,
    diskWriteMBps: 42,
    dockerVersion: '20.10.24+dfsg1',
    kernel: '6.1.0-rpi7-rpi-v8',
  },
  satsPerHour: 120,
  minHours: 1,
  maxHours: 720,
  slots: 2,
  images: ['rpib/debian:bookworm', 'rpib/busybox:1.36'],
  limits: { cpus: 1500, memoryMb: 1024, diskMb: 8192, pidsLimit: 256 },
  sshHostKey: 'SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s',
  relays: [
    '/ip4/203.0.113.7/tcp/4001/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA/p2p-circuit',
    'ssh://relay.example.org:2222',
  ],
  bitcoinNetwork: 'mainnet',
}

async function opsPerSecond(n: number, fn: () => unknown): Promise<number> {
  for (let i = 0; i < Math.min(200, n); i++) await fn() // warm up
  const t = performance.now()
  for (let i = 0; i < n; i++) await fn()
  return (n / (performance.now() - t)) * 1000
}

const listing = await signRecord('listing', body, key)
const bytes = encodeRecord(listing)
const beat = await signRecord(
  'presence',
  { seq: 1, listings: ['pi-kitchen'], load: { activeLeases: 1, freeSlots: 1 } },
  key,
)
const n = 3000

const verifyOps = await opsPerSecond(n, async () => {
  const r = await verifyRecord('listing', bytes)
  if (!r.ok) throw r.error
})
printTable('protocol (Ed25519, canonical DAG-CBOR)', [
  { metric: 'encoded listing size', value: bytes.length, unit: 'bytes', goal: '~1 KB' },
  { metric: 'listing as JSON', value: JSON.stringify(listing).length, unit: 'bytes' },
  {
    metric: 'encoded presence beat size',
    value: encodeRecord(beat).length,
    unit: 'bytes',
    goal: '~200 (ARCHITECTURE.md estimate)',
  },
  {
    metric: 'sign listing',
    value: await opsPerSecond(n, () => signRecord('listing', body, key)),
    unit: 'ops/s',
  },
  { metric: 'verify listing (bytes in)', value: verifyOps, unit: 'ops/s', goal: '≥ 1,000' },
  { metric: 'verify listing, mean', value: 1000 / verifyOps, unit: 'ms' },
  {
    metric: 'verify presence beat',
    value: await opsPerSecond(n, () => verifyRecord('presence', beat)),
    unit: 'ops/s',
  },
  { metric: 'encode listing', value: await opsPerSecond(n, () => encodeRecord(listing)), unit: 'ops/s' },
  { metric: 'decode listing', value: await opsPerSecond(n, () => decodeRecord(bytes)), unit: 'ops/s' },
  { metric: 'record id (sha-256)', value: await opsPerSecond(n, () => recordId(listing)), unit: 'ops/s' },
  {
    metric: 'reject forged listing',
    value: await opsPerSecond(n, () =>
      verifyRecord('listing', { ...listing, body: { ...listing.body, satsPerHour: 1 } }),
    ),
    unit: 'ops/s',
  },
])
process.stdout.write(`listing key of the benchmarked device: ${listingKey(provider, body.deviceId)}\n`)
