import { test } from 'node:test'
import assert from 'node:assert/strict'
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { execFile } from 'node:child_process'
import { createServer, type AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DaemonStateSchema, type DaemonState } from '../../src/daemon/state-file.js'
import { runCli } from '../helpers/cli.js'
import { waitFor } from '../api/http.js'
import { spawnNode, spawnRpib, within, type DaemonProcess } from './process.js'

async function withHome<T>(fn: (home: string) => Promise<T>): Promise<T> {
  const home = await mkdtemp(join(tmpdir(), 'rpib-daemon-'))
  try {
    return await fn(home)
  } finally {
    await rm(home, { recursive: true, force: true })
  }
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  )
}

/** Waits for `<home>/daemon.json` of this process (the daemon is serving once it exists). */
async function waitForState(home: string, p: DaemonProcess): Promise<DaemonState> {
  return waitFor(
    async () => {
      if (p.child.exitCode != null) throw new Error(`daemon exited early: ${p.stderr()}`)
      const text = await readFile(join(home, 'daemon.json'), 'utf8').catch(() => undefined)
      const state = text != null ? DaemonStateSchema.safeParse(JSON.parse(text)) : undefined
      return state?.success === true && state.data.pid === p.child.pid ? state.data : undefined
    },
    20_000,
    'the daemon to write daemon.json',
  )
}

/** Daemon flags for tests: random API port, p2p on loopback only (and RPIB_MDNS=false: no multicast). */
const LOOPBACK = ['--api-port', '0', '--listen', '/ip4/127.0.0.1/tcp/0']
const NO_MDNS = { RPIB_MDNS: 'false' }

function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer()
    srv.once('error', () => resolve(false))
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)))
  })
}

function jsonLines(text: string): { level: string; event: string; time: string; area: string }[] {
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as { level: string; event: string; time: string; area: string })
}

test('rpib daemon serves, refuses a second daemon, and on SIGTERM exits 0 promptly releasing its port', async () => {
  const signal = 'SIGTERM'
  await withHome(async (home) => {
    const daemon = spawnRpib(
      ['--home', home, 'daemon', ...LOOPBACK, '--network', 'sandbox-lifecycle'],
      NO_MDNS,
    )
    let events: DaemonProcess | undefined
    try {
      const state = await waitForState(home, daemon)
      const port = Number(new URL(state.apiUrl).port)
      assert.equal((await stat(join(home, 'api-token'))).mode & 0o777, 0o600)
      assert.equal((await stat(join(home, 'daemon.json'))).mode & 0o777, 0o600)

      // daemon.json is written as soon as the API listens; the services may still be starting
      const node = await waitFor(
        async () => {
          const status = await runCli(['--home', home, '--json', 'status'])
          assert.equal(status.code, 0, status.stderr)
          const n = JSON.parse(status.stdout) as {
            pid: number
            network: string
            peerId: string
            services: { name: string; state: string }[]
          }
          const names = n.services.map((s) => s.name).join(',')
          return names === 'market,payments,renter' && n.services.every((s) => s.state === 'running')
            ? n
            : undefined
        },
        20_000,
        'the services to be running',
      )
      assert.equal(node.pid, daemon.child.pid)
      assert.equal(node.network, 'sandbox-lifecycle')
      assert.equal(node.peerId, state.peerId)
      assert.deepEqual((node as unknown as { services: unknown[] }).services, [
        { name: 'market', state: 'running' },
        { name: 'payments', state: 'running' },
        { name: 'renter', state: 'running' },
      ])
      // no wallet in this home: the payments service says how to make one
      const token = (await readFile(join(home, 'api-token'), 'utf8')).trim()
      const wallet = await fetch(`${state.apiUrl}/api/wallet`, {
        headers: { authorization: `Bearer ${token}` },
      })
      assert.equal(wallet.status, 404)
      assert.match(((await wallet.json()) as { detail: string }).detail, /rpib wallet create/)
      const human = await runCli(['--home', home, 'status'])
      assert.match(human.stdout, /^daemon +running \(pid \d+, up \d+[hms]/)

      const second = await runCli(['--home', home, 'daemon', ...LOOPBACK], NO_MDNS)
      assert.equal(second.code, 1)
      assert.match(
        second.stderr,
        new RegExp(`^rpib: another daemon \\(pid ${daemon.child.pid}\\) is already running for `),
      )

      // a live-events client (another process) sees the shutdown announced, then its stream ends
      events = spawnRpib(['--home', home, 'events', '--types', 'daemon.'])
      const client = events
      await waitFor(
        () => {
          if (client.child.exitCode != null) throw new Error(`events client exited: ${client.stderr()}`)
          return daemon.stdout().includes('"event":"api.stream_opened"') ? true : undefined
        },
        20_000,
        'the events client to connect',
      )
      const running = await runCli(['--home', home, '--json', 'config', 'show', '--running'])
      assert.equal(running.code, 0, running.stderr)
      assert.equal(
        (JSON.parse(running.stdout) as { config: { network: string } }).config.network,
        'sandbox-lifecycle',
      )

      const started = Date.now()
      daemon.child.kill(signal)
      const exit = await within(daemon.exited, 10_000, `daemon exit after ${signal}`)
      assert.deepEqual(exit, { code: 0, signal: null }, daemon.stderr())
      assert.ok(Date.now() - started < 8000, 'prompt shutdown')
      assert.equal(await portIsFree(port), true, 'API port released')
      assert.equal(await exists(join(home, 'daemon.json')), false)
      assert.equal(await exists(join(home, 'daemon.lock')), false)

      const lines = jsonLines(daemon.stdout())
      const names = lines.map((l) => l.event)
      for (const e of [
        'api.listening',
        'market.listening',
        'service.started',
        'daemon.started',
        'daemon.stopping',
        'api.closed',
        'daemon.stopped',
      ]) {
        assert.ok(names.includes(e), `logged ${e}: ${names.join(',')}`)
      }
      assert.ok(lines.every((l) => !Number.isNaN(Date.parse(l.time)) && typeof l.level === 'string'))
      assert.equal(daemon.stderr(), '')

      const eventsExit = await within(client.exited, 10_000, 'events client exit')
      assert.equal(eventsExit.code, 0, client.stderr())
      const seen = jsonLines(client.stdout()).map((e) => (e as unknown as { type: string }).type)
      assert.ok(seen.includes('daemon.stopping'), `events client saw ${seen.join(',')}`)

      const after = await runCli(['--home', home, 'status'])
      assert.equal(after.code, 1)
      assert.equal(after.stderr, `rpib: no daemon running for ${home}; start one with \`rpib daemon\`\n`)
    } finally {
      daemon.kill()
      events?.kill()
    }
  })
})

test('SIGINT stops gracefully too; identity and API token persist across restarts; a stale lock is taken over', async () => {
  await withHome(async (home) => {
    const dead = spawnNode()
    await dead.exited
    await writeFile(join(home, 'daemon.lock'), `${dead.child.pid}\n`)
    const first = spawnRpib(['--home', home, 'daemon', ...LOOPBACK], NO_MDNS)
    let second: DaemonProcess | undefined
    try {
      const s1 = await waitForState(home, first)
      const token1 = await readFile(join(home, 'api-token'), 'utf8')
      first.child.kill('SIGINT') // Ctrl-C in a terminal: the same graceful stop as SIGTERM
      assert.deepEqual(await within(first.exited, 10_000, 'exit after SIGINT'), { code: 0, signal: null })
      assert.equal(await portIsFree(Number(new URL(s1.apiUrl).port)), true, 'API port released')
      assert.ok(jsonLines(first.stdout()).some((l) => l.event === 'daemon.stopped'))
      second = spawnRpib(['--home', home, 'daemon', ...LOOPBACK], NO_MDNS)
      const s2 = await waitForState(home, second)
      assert.equal(s2.peerId, s1.peerId)
      assert.equal(await readFile(join(home, 'api-token'), 'utf8'), token1)
      second.child.kill('SIGTERM')
      assert.equal((await within(second.exited, 10_000, 'second exit')).code, 0)
    } finally {
      first.kill()
      second?.kill()
    }
  })
})

test('start-up failures are one clear line, exit 1, and leave no lock behind', async () => {
  await withHome(async (home) => {
    const blocker = createServer()
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve))
    const busy = (blocker.address() as AddressInfo).port
    try {
      const r = await runCli(
        ['--home', home, 'daemon', '--api-port', String(busy), '--listen', '/ip4/127.0.0.1/tcp/0'],
        NO_MDNS,
      )
      assert.equal(r.code, 1)
      assert.match(
        r.stderr,
        new RegExp(`^rpib: API port ${busy} on 127\\.0\\.0\\.1 is in use; pass --api-port`),
      )
      assert.equal(await exists(join(home, 'daemon.lock')), false)
      assert.equal(await exists(join(home, 'daemon.json')), false)
    } finally {
      await new Promise((resolve) => blocker.close(resolve))
    }
    const provider = await runCli(['--home', home, 'daemon', ...LOOPBACK, '--provider'], NO_MDNS)
    assert.equal(provider.code, 1)
    assert.match(
      provider.stderr,
      /^rpib: the provider role needs a wallet for its invoices: run `rpib --home /,
    )
    assert.equal(await exists(join(home, 'daemon.lock')), false)
    const badConfig = await runCli(['--home', home, 'daemon', '--api-port', 'http'])
    assert.equal(badConfig.code, 1)
    assert.match(badConfig.stderr, /^rpib: invalid config: api\.port \(from flag --api-port\)/)
    await writeFile(join(home, 'api-token'), 'x'.repeat(43))
    await chmod(join(home, 'api-token'), 0o644)
    const lax = await runCli(['--home', home, 'daemon', ...LOOPBACK], NO_MDNS)
    assert.equal(lax.code, 1)
    assert.match(lax.stderr, /api-token is readable by other users \(mode 644\); run chmod 600 /)
    assert.equal(await exists(join(home, 'daemon.lock')), false)
  })
})

test('rpib status explains that no daemon runs, also when daemon.json is stale', async () => {
  await withHome(async (home) => {
    const none = await runCli(['--home', home, 'status'])
    assert.equal(none.code, 1)
    assert.equal(none.stderr, `rpib: no daemon running for ${home}; start one with \`rpib daemon\`\n`)
    const dead = spawnNode()
    await dead.exited
    await writeFile(
      join(home, 'daemon.json'),
      JSON.stringify({
        pid: dead.child.pid,
        apiUrl: 'http://127.0.0.1:1',
        peerId: 'x',
        startedAt: new Date().toISOString(),
        version: '0',
      }),
    )
    const stale = await runCli(['--home', home, 'status'])
    assert.equal(stale.code, 1)
    assert.match(
      stale.stderr,
      /^rpib: no daemon running for .* \(pid \d+ in daemon\.json is gone\); start one with `rpib daemon`\n$/,
    )
  })
})

test('rpib daemon --relay runs the SSH jump server and HTTP ingress, shown at /api/relay', async () => {
  await withHome(async (home) => {
    const config = join(home, 'relay.json')
    await writeFile(config, JSON.stringify({ relay: { listenHost: '127.0.0.1', sshPort: 0, httpPort: 0 } }))
    const daemon = spawnRpib(
      ['--home', home, 'daemon', ...LOOPBACK, '--relay', '--config', config, '--network', 'sandbox-relay'],
      NO_MDNS,
    )
    try {
      const state = await waitForState(home, daemon)
      const token = (await readFile(join(home, 'api-token'), 'utf8')).trim()
      const relay = await waitFor(
        async () => {
          if (daemon.child.exitCode != null) {
            throw new Error(`the relay daemon exited: ${daemon.stderr()}\n${daemon.stdout().slice(-2000)}`)
          }
          const res = await fetch(`${state.apiUrl}/api/relay`, {
            headers: { authorization: `Bearer ${token}` },
          }).catch(() => undefined)
          if (res == null) return undefined
          return res.ok
            ? ((await res.json()) as { ssh: { port: number; hostPublicKey: string }; http: { port: number } })
            : undefined
        },
        20_000,
        'the relay service',
      )
      // the jump server answers SSH with the host key the API reports
      const scan = await new Promise<string>((resolve, reject) =>
        execFile('ssh-keyscan', ['-t', 'ed25519', '-p', String(relay.ssh.port), '127.0.0.1'], (err, out) =>
          err != null ? reject(err) : resolve(out),
        ),
      )
      assert.ok(scan.includes(relay.ssh.hostPublicKey.split(' ')[1]!), scan)
      // HTTP ingress: a host that names no tunnel is refused, clearly
      const page = await fetch(`http://127.0.0.1:${relay.http.port}/`)
      assert.equal(page.status, 400)
      daemon.child.kill('SIGTERM')
      assert.deepEqual(await within(daemon.exited, 10_000, 'the relay daemon to stop'), {
        code: 0,
        signal: null,
      })
    } finally {
      if (daemon.child.exitCode == null) daemon.child.kill('SIGKILL')
    }
  })
})
