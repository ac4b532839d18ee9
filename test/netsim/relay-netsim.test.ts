import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import {
  CLI,
  REPO,
  canConnect,
  netsim,
  netsimUnavailable,
  nsRun,
  nsSpawn,
  pollUntil,
  writeSshdConfig,
  type NsProcess,
} from './fixtures.js'

const unavailable = netsimUnavailable()
if (unavailable != null && process.env.CI === 'true') {
  throw new Error(`netsim relay tests cannot run in CI: ${unavailable}`)
}

interface RelayReady {
  peerId: string
  ssh: { hostKeyFingerprint: string; hostPublicKey: string }
  p2p: string[]
}

describe('relays in simulated networks (provider and renter behind NATs)', { skip: unavailable }, () => {
  const prefix = `rpib${randomBytes(3).toString('hex')}`
  const ns = { pub: `${prefix}-pub`, home: `${prefix}-home`, rent: `${prefix}-rent` }
  const procs: NsProcess[] = []
  let dir: string
  let relay1: NsProcess
  let relay2: NsProcess
  let relayInfo: RelayReady[] = []
  let provider: NsProcess
  let providerPeer: string
  let tunnelName: string
  let sshd: Awaited<ReturnType<typeof writeSshdConfig>>
  let sshConfig: string

  const node = process.execPath
  const relayReady = (p: NsProcess) =>
    p
      .waitForLine((l) => l.includes('"event":"ready"'), 30_000, 'relay ready')
      .then((l) => JSON.parse(l) as RelayReady)

  function startRelay(n: 1 | 2): NsProcess {
    const p = nsSpawn(ns.pub, node, [
      CLI,
      '--home',
      join(dir, `relay${n}`),
      '--json',
      'relay',
      '--listen-host',
      `10.77.0.${n}`,
      '--ssh-port',
      '2222',
      '--http-port',
      '8080',
      '--p2p-port',
      '4001',
    ])
    procs.push(p)
    return p
  }

  async function writeRenterConfig(
    file: string,
    relays: { host: string; hostPublicKey: string }[],
  ): Promise<string> {
    const knownHosts = join(dir, `${file}.known_hosts`)
    await writeFile(
      knownHosts,
      relays.map((r) => `[${r.host}]:2222 ${r.hostPublicKey}`).join('\n') +
        `\n${tunnelName} ${sshd.hostPublicKey}\n`,
    )
    const path = join(dir, file)
    await writeFile(
      path,
      [
        `Host ${tunnelName}`,
        '  User root',
        `  IdentityFile ${sshd.clientKey}`,
        'Host *',
        `  UserKnownHostsFile ${knownHosts}`,
        '  GlobalKnownHostsFile /dev/null',
        '  StrictHostKeyChecking yes',
        '  BatchMode yes',
        '  IdentitiesOnly yes',
        '  ConnectTimeout 10',
        '  ServerAliveInterval 2',
        '  ServerAliveCountMax 2',
      ].join('\n') + '\n',
    )
    return path
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'rpib-netsim-'))
    netsim('up', prefix)
    relay1 = startRelay(1)
    relay2 = startRelay(2)
    relayInfo = [await relayReady(relay1), await relayReady(relay2)]

    // the provider's "embedded SSH server" and a web server, on the home namespace's loopback
    sshd = await writeSshdConfig(dir, 2222)
    procs.push(nsSpawn(ns.home, '/usr/sbin/sshd', ['-D', '-e', '-f', sshd.config]))
    procs.push(
      nsSpawn(ns.home, node, [
        '-e',
        "require('http').createServer((q,s)=>s.end('hello from the lease at '+q.url+'\\n')).listen(8081,'127.0.0.1')",
      ]),
    )
    const r1 = relayInfo[0]!
    provider = nsSpawn(ns.home, node, [
      CLI,
      '--home',
      join(dir, 'provider'),
      '--json',
      'tunnel',
      '--relay',
      `10.77.0.1:2222=${r1.ssh.hostKeyFingerprint}`,
      '--relay',
      `10.77.0.2:2222=${relayInfo[1]!.ssh.hostKeyFingerprint}`,
      '--forward',
      'lease1:22=127.0.0.1:2222',
      '--forward',
      'lease1:80=127.0.0.1:8081',
      '--ssh-target',
      '127.0.0.1:2222',
      '--p2p-relay',
      r1.p2p.find((a) => a.includes('10.77.0.1'))!,
      '--p2p-listen',
      '/ip4/0.0.0.0/tcp/4002',
    ])
    procs.push(provider)
    const ready = JSON.parse(
      await provider.waitForLine((l) => l.includes('"event":"ready"'), 30_000, 'provider ready'),
    ) as {
      peerId: string
      names: string[]
    }
    providerPeer = ready.peerId
    tunnelName = ready.names[0]!.replace(/:22$/, '')
    await provider.waitForLine(
      (l) => l.includes('"event":"relays"') && (JSON.parse(l) as { up: string[] }).up.length === 2,
      20_000,
      'tunnels on both relays',
    )
    sshConfig = await writeRenterConfig('ssh_config', [
      { host: '10.77.0.1', hostPublicKey: relayInfo[0]!.ssh.hostPublicKey },
      { host: '10.77.0.2', hostPublicKey: relayInfo[1]!.ssh.hostPublicKey },
    ])
  })

  after(async () => {
    for (const p of procs.reverse()) await p.kill().catch(() => {})
    netsim('down', prefix)
    await rm(dir, { recursive: true, force: true })
  })

  it('the provider cannot be dialed directly from the public network or the renter', async () => {
    // the provider's sshd and libp2p port, by LAN address and via its router's public address
    assert.equal(await canConnect(ns.rent, '192.168.77.2', 4002), false)
    assert.equal(await canConnect(ns.pub, '192.168.77.2', 4002), false)
    assert.equal(await canConnect(ns.pub, '10.77.1.2', 4002), false)
    assert.equal(await canConnect(ns.pub, '10.77.1.2', 2222), false)
    // while the relays are reachable from the renter
    assert.equal(await canConnect(ns.rent, '10.77.0.1', 2222), true)
  })

  it('plain OpenSSH ssh -J through relay 1 runs a command on the provider (exit code checked)', async () => {
    const r = await nsRun(ns.rent, 'ssh', [
      '-F',
      sshConfig,
      '-J',
      'jump@10.77.0.1:2222',
      tunnelName,
      'echo via-jump; exit 7',
    ])
    assert.equal(r.stdout.trim(), 'via-jump', r.stderr)
    assert.equal(r.code, 7)
  })

  it('rpib ssh over libp2p (circuit relay, host key pinned by fingerprint) does the same', async () => {
    const relayAddr = relayInfo[0]!.p2p.find((a) => a.includes('10.77.0.1'))!
    const { fingerprintFromLine } = await import('./host-key.js')
    const r = await nsRun(
      ns.rent,
      node,
      [
        CLI,
        '--home',
        join(dir, 'renter'),
        'ssh',
        '--peer',
        `${relayAddr}/p2p-circuit/p2p/${providerPeer}`,
        '--host-key',
        fingerprintFromLine(sshd.hostPublicKey),
        '--user',
        'root',
        '-i',
        sshd.clientKey,
        '--',
        'echo via-libp2p; exit 4',
      ],
      90_000,
    )
    assert.equal(r.stdout.trim(), 'via-libp2p', r.stderr)
    assert.equal(r.code, 4)
  })

  it('curl from the renter fetches a page served inside the provider over HTTP ingress', async () => {
    const host = `${tunnelName.replace(/\.rpib$/, '')}.relay1.example`
    const r = await nsRun(ns.rent, 'curl', [
      '-sS',
      '--max-time',
      '10',
      '--resolve',
      `${host}:8080:10.77.0.1`,
      `http://${host}:8080/index.html`,
    ])
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stdout, 'hello from the lease at /index.html\n')
    const unknown = await nsRun(ns.rent, 'curl', [
      '-s',
      '-o',
      '/dev/null',
      '-w',
      '%{http_code}',
      '--resolve',
      `nope.${'a'.repeat(52)}.relay1.example:8080:10.77.0.1`,
      `http://nope.${'a'.repeat(52)}.relay1.example:8080/`,
    ])
    assert.equal(unknown.stdout, '502')
  })

  it('a relay that swaps in a different host key is detected and refused', async () => {
    const evil = nsSpawn(ns.pub, node, [`${REPO}test/dist/netsim/evil-relay.js`, '10.77.0.3', '2222'])
    procs.push(evil)
    const { hostPublicKey } = JSON.parse(
      await evil.waitForLine((l) => l.includes('ready'), 15_000, 'evil relay'),
    ) as { hostPublicKey: string }
    const cfg = await writeRenterConfig('ssh_config_evil', [{ host: '10.77.0.3', hostPublicKey }])
    const r = await nsRun(ns.rent, 'ssh', [
      '-F',
      cfg,
      '-J',
      'jump@10.77.0.3:2222',
      tunnelName,
      'echo should-not-run',
    ])
    assert.equal(r.code, 255)
    assert.doesNotMatch(r.stdout, /should-not-run/)
    assert.match(r.stderr, /REMOTE HOST IDENTIFICATION HAS CHANGED|Host key verification failed/i)
    await evil.kill()
  })

  it('killing relay 1 mid-session: the session fails clearly, relay 2 carries a new session within 10 s', async () => {
    const session = nsSpawn(ns.rent, 'ssh', [
      '-F',
      sshConfig,
      '-J',
      'jump@10.77.0.1:2222',
      tunnelName,
      'echo session-started; sleep 60',
    ])
    procs.push(session)
    const relayAddr = relayInfo[0]!.p2p.find((a) => a.includes('10.77.0.1'))!
    const p2pSession = nsSpawn(ns.rent, node, [
      CLI,
      '--home',
      join(dir, 'renter'),
      'ssh',
      '--peer',
      `${relayAddr}/p2p-circuit/p2p/${providerPeer}`,
      '--host-key',
      sshd.hostPublicKey,
      '--user',
      'root',
      '-i',
      sshd.clientKey,
      '--',
      'echo p2p-started; sleep 60',
    ])
    procs.push(p2pSession)
    await session.waitForLine((l) => l === 'session-started', 20_000, 'long session to start')
    await p2pSession.waitForLine((l) => l === 'p2p-started', 60_000, 'long libp2p session to start')
    const linesBefore = provider.lines.length
    await relay1.kill('SIGKILL')
    const code = await session.exited
    assert.equal(code, 255, 'the killed session ends with an error status')
    assert.match(session.stderr(), /closed|broken pipe|reset|timeout/i)
    assert.equal(await p2pSession.exited, 255)
    assert.match(p2pSession.stderr(), /rpib: the connection to the provider was lost/)

    const elapsed = await pollUntil(
      () =>
        provider.lines.slice(linesBefore).some((l) => {
          const e = JSON.parse(l) as { event: string; up?: string[] }
          return e.event === 'relays' && e.up?.length === 1 && e.up[0] === '10.77.0.2:2222'
        }),
      10_000,
      'provider listing its tunnels on relay 2 only',
    )
    assert.ok(elapsed <= 10_000)
    const r = await nsRun(ns.rent, 'ssh', [
      '-F',
      sshConfig,
      '-J',
      'jump@10.77.0.2:2222',
      tunnelName,
      'echo via-relay2; exit 3',
    ])
    assert.equal(r.stdout.trim(), 'via-relay2', r.stderr)
    assert.equal(r.code, 3)
  })
})
