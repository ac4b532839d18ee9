import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createTunnelSet, type TunnelSet } from '../../src/tunnel/tunnel-set.js'
import type { RelayEndpoint } from '../../src/tunnel/reverse-tunnel.js'
import { tunnelName } from '../../src/relay/names.js'
import { backoffDelay } from '../../src/tunnel/backoff.js'
import { logger } from '../../src/log.js'
import {
  freePort,
  newIdentity,
  run,
  startJumpRelay,
  startSshd,
  tempDir,
  until,
  writeRenterSshConfig,
  type Sshd,
  type TestRelay,
} from './fixtures.js'

const log = logger('rpib:test:tunnel-set')
const endpoint = (r: TestRelay): RelayEndpoint => ({
  host: r.host,
  port: r.port,
  hostKeyFingerprint: r.relay.hostKeyFingerprint,
})

describe('provider tunnel set across relays', () => {
  let tmp: Awaited<ReturnType<typeof tempDir>>
  let sshd: Sshd
  const relays: TestRelay[] = []
  const sets: TunnelSet[] = []

  before(async () => {
    tmp = await tempDir()
    sshd = await startSshd(tmp.dir)
  })
  after(async () => {
    for (const s of sets) await s.stop()
    for (const r of relays) await r.relay.stop()
    await sshd?.stop()
    await tmp?.cleanup()
  })

  it('holds tunnels on two relays, survives losing one, reconnects when it returns, and reports each change', async () => {
    const r1 = await startJumpRelay()
    const r2 = await startJumpRelay()
    relays.push(r1, r2)
    const id = await newIdentity()
    const name = tunnelName('lease1', id.publicKey.raw)
    const announced: string[][] = []
    const set = createTunnelSet({
      relays: [endpoint(r1), endpoint(r2)],
      identity: id,
      forwards: [{ name, port: 22, target: { host: '127.0.0.1', port: sshd.port } }],
      logger: log,
      backoff: { initialMs: 100, maxMs: 400 },
      onRelaysChanged: (up) => announced.push(up.map((r) => String(r.port)).sort()),
    })
    sets.push(set)
    set.start()
    await set.waitForUp(2, 10_000)
    assert.deepEqual(announced.at(-1), [String(r1.port), String(r2.port)].sort())

    // relay 1 goes away: relay 2 still carries sessions, and the listing hook hears about it
    const r1Port = r1.port
    await r1.relay.stop()
    await until(() => set.upRelays().length === 1, 10_000, 'relay 1 tunnel down')
    assert.deepEqual(announced.at(-1), [String(r2.port)])
    const cfg = await writeRenterSshConfig(tmp.dir, {
      relay: r2,
      targetName: name,
      targetHostKey: sshd.hostPublicKey,
      identityFile: sshd.clientKeyPath,
    })
    const r = await run('ssh', ['-F', cfg, name, 'exit 3'])
    assert.equal(r.code, 3, r.stderr)

    // relay 1 comes back on the same port with the same host key: the provider returns to it
    const again = await startJumpRelay({}, r1Port, r1.hostKey)
    relays.push(again)
    await set.waitForUp(2, 10_000)
    assert.deepEqual(announced.at(-1), [String(r1Port), String(r2.port)].sort())
  })

  it('moves to a spare relay when one of its relays is unreachable', async () => {
    const live = await startJumpRelay()
    relays.push(live)
    const deadPort = await freePort()
    const id = await newIdentity()
    const set = createTunnelSet({
      relays: [{ host: '127.0.0.1', port: deadPort }, endpoint(live)],
      want: 1,
      identity: id,
      forwards: [
        { name: tunnelName('x', id.publicKey.raw), port: 22, target: { host: '127.0.0.1', port: sshd.port } },
      ],
      logger: log,
      backoff: { initialMs: 50, maxMs: 200 },
    })
    sets.push(set)
    set.start()
    const up = await set.waitForUp(1, 10_000)
    assert.equal(up[0]!.port, live.port)
  })

  it('refuses a relay whose host key does not match the pinned fingerprint', async () => {
    const r = await startJumpRelay()
    relays.push(r)
    const id = await newIdentity()
    const set = createTunnelSet({
      relays: [
        {
          host: r.host,
          port: r.port,
          hostKeyFingerprint: 'SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
        },
      ],
      want: 1,
      identity: id,
      forwards: [
        { name: tunnelName('x', id.publicKey.raw), port: 22, target: { host: '127.0.0.1', port: sshd.port } },
      ],
      logger: log,
      backoff: { initialMs: 50, maxMs: 200 },
    })
    sets.push(set)
    set.start()
    await until(() => (set.statuses()[0]?.attempt ?? 0) >= 2, 10_000, 'two failed attempts')
    assert.equal(set.upRelays().length, 0)
    assert.match(set.statuses()[0]!.lastError ?? '', /host key|verification/i)
    assert.equal(r.relay.stats().providerLogins, 0)
  })

  it('backs off exponentially with jitter, capped', () => {
    const opts = { initialMs: 100, maxMs: 1_000 }
    assert.equal(
      backoffDelay(0, opts, () => 1),
      100,
    )
    assert.equal(
      backoffDelay(3, opts, () => 1),
      800,
    )
    assert.equal(
      backoffDelay(10, opts, () => 1),
      1_000,
    )
    assert.equal(
      backoffDelay(10, opts, () => 0),
      500,
    )
  })
})
