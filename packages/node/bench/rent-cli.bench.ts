/**
 * `rpib rent` start → shell through the product's own doors: a provider daemon and a renter daemon as
 * separate processes on the devchain (0-conf accepted), the `rpib rent` CLI process, then `rpib ssh
 * <lease> -- true` (OpenSSH over libp2p with the pinned host key). Median of 5, and where the time goes,
 * read from both daemons' event streams. Needs Docker and the rpib/busybox image.
 */
import { spawnSync } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { BUSYBOX_IMAGE, makeRenterKey } from '../test/containers/harness.js'
import { startRentalMarket, type MarketDaemon } from '../test/daemon/rental-market.js'
import { printTable } from './table.js'

const RUNS = 5
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

if (spawnSync('docker', ['image', 'inspect', BUSYBOX_IMAGE], { stdio: 'ignore' }).status !== 0) {
  console.error(`rent-cli bench needs Docker and ${BUSYBOX_IMAGE} (scripts/build-base-image --only busybox)`)
  process.exit(1)
}

/** When each (offerId, status) was first announced on a daemon's /api/events stream. */
function watchEvents(daemon: MarketDaemon, type: string, signal: AbortSignal): Map<string, number> {
  const seen = new Map<string, number>()
  void (async () => {
    const token = (await readFile(join(daemon.home, 'api-token'), 'utf8')).trim()
    const res = await fetch(`${daemon.state.apiUrl}/api/events`, {
      headers: { authorization: `Bearer ${token}` },
      signal,
    })
    const decoder = new TextDecoder()
    let buffer = ''
    for await (const chunk of res.body!) {
      buffer += decoder.decode(chunk, { stream: true })
      let nl: number
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, nl)
        buffer = buffer.slice(nl + 1)
        if (!line.startsWith('data:')) continue
        const e = JSON.parse(line.slice(5)) as {
          type: string
          time: string
          data: { offerId?: string; status?: string }
        }
        const k = `${e.data.offerId}:${e.data.status}`
        if (e.type === type && !seen.has(k)) seen.set(k, Date.parse(e.time))
      }
    }
  })().catch(() => undefined)
  return seen
}

const market = await startRentalMarket({
  owners: [
    [
      {
        id: 'pi',
        name: 'Bench Pi',
        satsPerHour: 1000,
        images: [BUSYBOX_IMAGE],
        slots: RUNS,
        limits: { memoryMb: 64, diskMb: 16 },
      },
    ],
  ],
  // long enough that no lease ends during the bench
  secondsPerHour: 600,
  renterSats: 1_000_000,
})
const stopEvents = new AbortController()
try {
  const owner = market.owners[0]!
  const listing = `${owner.state.peerId}/pi`
  const key = await makeRenterKey(market.dir)
  const renterSeen = watchEvents(market.renter, 'rental.updated', stopEvents.signal)
  const ownerSeen = watchEvents(owner, 'lease.updated', stopEvents.signal)
  const rows: Record<string, number>[] = []
  for (let i = 0; i < RUNS; i++) {
    const t0 = Date.now()
    const rent = await market.renter.cli([
      '--json',
      'rent',
      listing,
      '--hours',
      '1',
      '--ssh-key',
      `${key.path}.pub`,
    ])
    const t1 = Date.now()
    if (rent.code !== 0) throw new Error(`rpib rent failed: ${rent.stderr}${rent.stdout}`)
    const { offerId } = JSON.parse(rent.stdout) as { offerId: string }
    const ssh = await market.renter.cli(['ssh', offerId.slice(0, 12), '-i', key.path, '--', 'true'])
    const t2 = Date.now()
    if (ssh.code !== 0) throw new Error(`rpib ssh failed: ${ssh.stderr}${ssh.stdout}`)
    const at = (seen: Map<string, number>, status: string): number => {
      const t = seen.get(`${offerId}:${status}`)
      if (t === undefined) throw new Error(`no ${status} event for ${offerId}`)
      return t
    }
    const offered = at(renterSeen, 'awaiting-payment')
    const paid = at(renterSeen, 'paid')
    const detected = at(ownerSeen, 'provisioning')
    const provisioned = at(ownerSeen, 'active')
    const leaseSeen = at(renterSeen, 'active')
    rows.push({
      negotiate: offered - t0,
      pay: paid - offered,
      detect: detected - paid,
      provision: provisioned - detected,
      'lease to renter': leaseSeen - provisioned,
      'rpib rent exits': t1 - leaseSeen,
      'rpib ssh -- true': t2 - t1,
      total: t2 - t0,
    })
  }
  const goals: Record<string, string> = { total: '≤ 2,000 (a cloud VPS: ~60,000)' }
  printTable(
    `rpib rent → shell through the CLI and two daemon processes (0-conf, median of ${RUNS}; min–max)`,
    Object.keys(rows[0]!).map((phase) => {
      const xs = rows.map((r) => r[phase]!)
      return {
        metric: phase,
        value: median(xs),
        unit: `ms (${Math.min(...xs)}–${Math.max(...xs)})`,
        ...(goals[phase] != null ? { goal: goals[phase] } : {}),
      }
    }),
  )
} finally {
  stopEvents.abort()
  await market.stop()
}
