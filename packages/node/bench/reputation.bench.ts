/**
 * Market history costs: signing a sealed history entry, opening it, folding a large history into
 * reputation (what a node pays after new records arrive) and a 1,000-listing query with reputation joined.
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { Ed25519PrivateKey } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { encodeRecord, type HistoryRecord } from '@rpib/protocol'
import { MarketIndex } from '../src/market/market-index.js'
import { openHistory, signHistory } from '../src/market/offers-log.js'
import { ReputationBook } from '../src/market/reputation-book.js'
import { summarizeHistory } from '../src/market/reputation.js'
import { printTable, type BenchRow } from './table.js'

const PROVIDERS = 100
const LEASES_PER_PROVIDER = 50
const HOUR = 3_600_000

function time<T>(work: () => T): { value: T; ms: number } {
  const start = performance.now()
  const value = work()
  return { value, ms: performance.now() - start }
}

async function main(): Promise<void> {
  const renterKey = await generateKeyPair('Ed25519')
  const renter = peerIdFromPrivateKey(renterKey).toString()
  const providers: { key: Ed25519PrivateKey; id: string }[] = []
  for (let i = 0; i < PROVIDERS; i++) {
    const key = await generateKeyPair('Ed25519')
    providers.push({ key, id: peerIdFromPrivateKey(key).toString() })
  }

  // signing: every provider's leases, each a lease (sealed SSH access) and a lease end
  const records: HistoryRecord[] = []
  const signStart = performance.now()
  let sealedBytes = 0
  for (const p of providers) {
    for (let l = 0; l < LEASES_PER_PROVIDER; l++) {
      const leaseId = (p.id.length * 1_000_000 + records.length).toString(16).padStart(64, '0')
      const base = { leaseId, listingKey: `${p.id}/pi`, provider: p.id, renter }
      const lease = await signHistory(
        { ...base, kind: 'lease', startsAt: 0, endsAt: HOUR },
        {
          ssh: {
            user: 'lease',
            endpoints: [`/ip4/127.0.0.1/tcp/4001/p2p/${p.id}`],
            hostKeyFingerprint: 'SHA256:' + 'A'.repeat(43),
          },
        },
        p.key,
        p.id,
      )
      sealedBytes += encodeRecord(lease).byteLength
      records.push(lease)
      records.push(
        await signHistory(
          { ...base, kind: 'lease-end', reason: 'expired', endsAt: HOUR },
          undefined,
          p.key,
          p.id,
        ),
      )
    }
  }
  const signMs = (performance.now() - signStart) / records.length

  const sealed = records.filter((r) => r.body.sealed !== undefined).slice(0, 500)
  const open = time(() => {
    for (const r of sealed) openHistory(r, renterKey)
  })

  const fold = time(() => summarizeHistory(records))

  const index = new MarketIndex({ offlineAfterMs: 90_000 })
  const offers = { epochs: () => ['now'], records: async () => records, watch: () => () => undefined }
  const book = new ReputationBook({ offers, index })
  await book.start()
  for (const [i, p] of providers.entries()) {
    for (let d = 0; d < 10; d++) {
      index.upsert(`${p.id}/pi-${d}`, {
        signer: p.id,
        createdAt: i,
        expiresAt: Number.MAX_SAFE_INTEGER,
        body: { deviceId: `pi-${d}`, version: 1, status: 'listed', satsPerHour: 100 + d, specs: {} },
      } as unknown as Parameters<MarketIndex['upsert']>[1])
    }
  }
  book.get(providers[0]!.id) // first question folds the history
  index.query({ presence: 'any', sort: 'reputation', limit: 1000 }) // warm-up (JIT)
  const query = time(() => index.query({ presence: 'any', sort: 'reputation', limit: 1000 }))

  const rows: BenchRow[] = [
    { metric: 'history records', value: records.length, unit: 'records' },
    { metric: 'sign one entry (half of them sealed)', value: signMs, unit: 'ms' },
    {
      metric: 'sealed lease entry size',
      value: Math.round(sealedBytes / (records.length / 2)),
      unit: 'bytes',
    },
    { metric: 'open one sealed entry', value: open.ms / sealed.length, unit: 'ms' },
    { metric: `fold ${records.length} records into reputation`, value: fold.ms, unit: 'ms', goal: '< 500' },
    {
      metric: `query ${query.value.total} listings sorted by reputation`,
      value: query.ms,
      unit: 'ms',
      goal: '< 50',
    },
  ]
  printTable('market history and reputation', rows)
}

await main()
