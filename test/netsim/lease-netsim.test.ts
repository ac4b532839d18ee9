/**
 * A real lease across simulated networks: a provider DAEMON with Docker behind a home NAT, two relay
 * daemons (`rpib daemon --relay`) on "the internet", a renter daemon behind another NAT. The renter rents
 * through the market and pays on a devchain; then reaches the lease container with `ssh -J` through a
 * relay and with `rpib ssh` over libp2p, fetches a page from a web server inside the container through a
 * relay's HTTP ingress, and keeps working through relay 2 when relay 1 dies.
 *
 * The lease containers run on this machine's Docker engine (host network namespace). The provider's
 * iptables calls (the lease firewall) go to the host namespace through a PATH shim, and one veth gives
 * the provider's namespace a route to the lease network only — what a real provider host has natively.
 */
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { peerIdFromString } from '@libp2p/peer-id'
import { base32 } from 'multiformats/bases/base32'
import {
  CLI,
  REPO,
  canConnect,
  netsim,
  netsimUnavailable,
  nsRun,
  nsSpawn,
  pollUntil,
  type NsProcess,
} from './fixtures.js'

const BUSYBOX = 'rpib/busybox:latest'
const EXPOSE_CHILD = `${REPO}packages/node/dist/test/relay/expose-child.js`

function dockerUnavailable(): string | undefined {
  const r = spawnSync('docker', ['image', 'inspect', BUSYBOX], { encoding: 'utf8', timeout: 20_000 })
  if (r.error != null) return 'needs the docker CLI and a running engine'
  if (r.status !== 0) return `needs the ${BUSYBOX} image (scripts/build-base-image)`
  return undefined
}

const unavailable = netsimUnavailable() ?? dockerUnavailable()
if (unavailable != null && process.env.CI === 'true') {
  throw new Error(`netsim lease test cannot run in CI: ${unavailable}`)
}

const ENV = { RPIB_WALLET_PASSPHRASE: 'netsim-lease-passphrase', RPIB_MDNS: 'false' }

function sh(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 30_000 })
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr}`)
  return r.stdout
}

interface ListingView {
  listing: { body: { relays: string[]; sshHostKey: string } }
}

describe('a real lease through relays in simulated networks', { skip: unavailable }, () => {
  const prefix = `rpl${randomBytes(3).toString('hex')}`
  const ns = { pub: `${prefix}-pub`, home: `${prefix}-home`, rent: `${prefix}-rent` }
  const network = `sandbox-${randomBytes(4).toString('hex')}`
  const dockerNetwork = `rpib-netsim-${randomBytes(4).toString('hex')}`
  const hostVeth = `${prefix}d`
  const linkNet = `10.79.${Math.floor(Math.random() * 250) + 1}`
  const ruleTag = `rpib-netsim-${prefix}`
  const procs: NsProcess[] = []
  const node = process.execPath
  const chainUrl = 'http://10.77.0.3:3002'
  let dir: string
  const relays: {
    proc: NsProcess
    peerId: string
    addr: string
    hostPublicKey: string
    fingerprint: string
  }[] = []
  let providerHome: string
  let renterHome: string
  let providerPeer: string
  let listingKey: string
  let sshName: string
  let sshUser: string
  let offerId: string
  let renterKey: string
  let sshConfig: string
  let providerCircuit: string
  let hostLinkUp = false

  const cli = (ns: string, home: string, args: string[], timeoutMs = 60_000) =>
    nsRun(
      ns,
      'env',
      [...Object.entries(ENV).map(([k, v]) => `${k}=${v}`), node, CLI, '--home', home, ...args],
      timeoutMs,
    )

  async function jsonCli<T>(ns: string, home: string, args: string[]): Promise<T> {
    const r = await cli(ns, home, ['--json', ...args])
    if (r.code !== 0) throw new Error(`rpib ${args.join(' ')} failed (${r.code}): ${r.stderr}`)
    return JSON.parse(r.stdout) as T
  }

  function daemon(nsName: string, home: string, args: string[], env: Record<string, string> = {}): NsProcess {
    const vars = Object.entries({ ...ENV, ...env }).map(([k, v]) => `${k}=${v}`)
    const p = nsSpawn(nsName, 'env', [
      ...vars,
      node,
      CLI,
      '--home',
      home,
      'daemon',
      '--network',
      network,
      '--api-port',
      '0',
      ...args,
    ])
    procs.push(p)
    return p
  }

  const event = (p: NsProcess, name: string, what: string) =>
    p
      .waitForLine((l) => l.includes(`"event":"${name}"`), 60_000, what)
      .then(
        (l) => JSON.parse(l) as Record<string, unknown>,
        (err: Error) => {
          throw new Error(`${err.message}\nlast log lines:\n${p.lines.slice(-8).join('\n')}`)
        },
      )

  async function listing(nsName: string, home: string): Promise<ListingView | undefined> {
    const r = await cli(nsName, home, ['--json', 'market', 'show', listingKey])
    return r.code === 0 ? (JSON.parse(r.stdout) as ListingView) : undefined
  }

  async function writeSshConfig(): Promise<string> {
    const hostKey = (
      await readFile(join(providerHome, 'provider', 'ssh_host_ed25519_key.pub'), 'utf8').catch(() =>
        sh('ssh-keygen', ['-y', '-f', join(providerHome, 'provider', 'ssh_host_ed25519_key')]),
      )
    ).trim()
    const knownHosts = join(dir, 'known_hosts')
    await writeFile(
      knownHosts,
      relays.map((r, i) => `[10.77.0.${i + 1}]:2222 ${r.hostPublicKey}`).join('\n') +
        `\n${sshName} ${hostKey}\n`,
    )
    const path = join(dir, 'ssh_config')
    await writeFile(
      path,
      [
        'Host *',
        `  IdentityFile ${renterKey}`,
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
    dir = await mkdtemp(join(tmpdir(), 'rpib-netsim-lease-'))
    await chmod(dir, 0o755)
    netsim('up', prefix)

    // the provider host's own view of its lease network: iptables in the host namespace, one route
    const shim = join(dir, 'bin')
    await mkdir(shim)
    await writeFile(
      join(shim, 'iptables'),
      `#!/bin/sh\nexec nsenter --net=/proc/${process.pid}/ns/net ${sh('sh', ['-c', 'command -v iptables']).trim()} "$@"\n`,
    )
    await chmod(join(shim, 'iptables'), 0o755)
    sh('ip', ['link', 'add', hostVeth, 'type', 'veth', 'peer', 'name', 'dk0', 'netns', ns.home])
    hostLinkUp = true
    sh('ip', ['addr', 'add', `${linkNet}.1/30`, 'dev', hostVeth])
    sh('ip', ['link', 'set', hostVeth, 'up'])
    sh('ip', ['netns', 'exec', ns.home, 'ip', 'addr', 'add', `${linkNet}.2/30`, 'dev', 'dk0'])
    sh('ip', ['netns', 'exec', ns.home, 'ip', 'link', 'set', 'dk0', 'up'])
    sh('iptables', [
      '-w',
      '10',
      '-I',
      'DOCKER-USER',
      '1',
      '-i',
      hostVeth,
      '-m',
      'comment',
      '--comment',
      ruleTag,
      '-j',
      'ACCEPT',
    ])

    // the devchain on "the internet" (it listens on loopback; a small proxy publishes it on 10.77.0.3)
    const chain = nsSpawn(ns.pub, node, [
      CLI,
      '--home',
      join(dir, 'chain'),
      '--json',
      'devchain',
      'start',
      '--memory',
      '--port',
      '3002',
    ])
    procs.push(chain)
    await chain.waitForLine((l) => l.includes('"url"'), 30_000, 'devchain')
    procs.push(
      nsSpawn(ns.pub, node, [
        '-e',
        "const n=require('net');n.createServer(c=>{const u=n.connect(3002,'127.0.0.1');c.pipe(u).pipe(c);" +
          "c.on('error',()=>u.destroy());u.on('error',()=>c.destroy())}).listen(3002,'10.77.0.3',()=>console.log('proxy'))",
      ]),
    )
    await procs.at(-1)!.waitForLine((l) => l === 'proxy', 10_000, 'devchain proxy')

    // two relay daemons
    for (const n of [1, 2]) {
      const home = join(dir, `relay${n}`)
      const config = join(dir, `relay${n}.json`)
      await writeFile(
        config,
        JSON.stringify({ relay: { listenHost: `10.77.0.${n}`, sshPort: 2222, httpPort: 8080 } }),
      )
      const proc = daemon(ns.pub, home, [
        '--relay',
        '--config',
        config,
        '--listen',
        `/ip4/10.77.0.${n}/tcp/4001`,
      ])
      const market = await event(proc, 'market.listening', `relay ${n} market`)
      const listening = await event(proc, 'relay.listening', `relay ${n} jump server`)
      const ssh = listening.ssh as { hostKeyFingerprint: string; hostPublicKey: string }
      const addr = (market.addresses as string[])[0]!
      relays.push({
        proc,
        peerId: addr.split('/p2p/')[1]!,
        addr,
        hostPublicKey: ssh.hostPublicKey,
        fingerprint: ssh.hostKeyFingerprint,
      })
    }

    // wallets; the renter gets coins
    providerHome = join(dir, 'provider')
    renterHome = join(dir, 'renter')
    for (const [n, home] of [
      [ns.home, providerHome],
      [ns.rent, renterHome],
    ] as const) {
      const r = await cli(n, home, ['wallet', 'create', '--esplora-url', chainUrl])
      assert.equal(r.code, 0, r.stderr)
    }
    const { address } = await jsonCli<{ address: string }>(ns.rent, renterHome, [
      'wallet',
      'address',
      '--esplora-url',
      chainUrl,
    ])
    const faucet = await nsRun(ns.pub, node, [
      CLI,
      'devchain',
      'faucet',
      address,
      '200000',
      '--mine',
      '--url',
      'http://127.0.0.1:3002',
    ])
    assert.equal(faucet.code, 0, faucet.stderr)

    // the provider daemon behind the home NAT, tunnels on both relays, reservations on both
    const providerConfig = join(dir, 'provider.json')
    await writeFile(
      providerConfig,
      JSON.stringify({
        provider: {
          devices: [
            {
              id: 'pi',
              name: 'NAT Pi',
              satsPerHour: 1000,
              images: [BUSYBOX],
              limits: { memoryMb: 64, diskMb: 16 },
            },
          ],
          secondsPerHour: 120,
          zeroConfMaxSats: 1_000_000,
          dockerNetwork,
          relays: relays.map((r, i) => ({
            ssh: `10.77.0.${i + 1}:2222`,
            hostKeyFingerprint: r.fingerprint,
            httpPort: 8080,
            httpDomain: `relay${i + 1}.example`,
            multiaddr: `${r.addr}/p2p-circuit`,
          })),
        },
      }),
    )
    const provider = daemon(
      ns.home,
      providerHome,
      [
        '--provider',
        '--config',
        providerConfig,
        '--bitcoin-url',
        chainUrl,
        '--listen',
        '/ip4/0.0.0.0/tcp/4002',
        // one reservation per relay, on relays found through the bootstrap connections (naming both
        // relays' circuit addresses as listen addresses stalls libp2p's start)
        ...relays.flatMap((r) => ['--listen', '/p2p-circuit', '--bootstrap', r.addr]),
      ],
      { PATH: `${shim}:${process.env.PATH ?? '/usr/bin:/bin'}` },
    )
    providerPeer = (await event(provider, 'daemon.started', 'provider daemon')).peerId as string
    listingKey = `${providerPeer}/pi`
    const owner = base32.baseEncode(peerIdFromString(providerPeer).publicKey!.raw)
    sshName = `ssh.${owner}.rpib`
    providerCircuit = `${relays[0]!.addr}/p2p-circuit/p2p/${providerPeer}`
    await pollUntil(
      async () => (await listing(ns.home, providerHome))?.listing.body.relays.length === 4,
      60_000,
      'the provider listing both relays',
    )

    // the renter daemon behind its own NAT
    // the renter prices leases with the same fast lease clock as the provider
    const renterConfig = join(dir, 'renter.json')
    await writeFile(renterConfig, JSON.stringify({ provider: { secondsPerHour: 120 } }))
    const renter = daemon(ns.rent, renterHome, [
      '--config',
      renterConfig,
      '--bitcoin-url',
      chainUrl,
      '--listen',
      '/ip4/0.0.0.0/tcp/4003',
      ...relays.flatMap((r) => ['--bootstrap', r.addr]),
      '--bootstrap',
      providerCircuit,
    ])
    await event(renter, 'daemon.started', 'renter daemon')
    await pollUntil(
      async () => (await listing(ns.rent, renterHome)) != null,
      60_000,
      'the listing at the renter',
    )

    renterKey = join(dir, 'renter_key')
    sh('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'netsim-renter', '-f', renterKey])
    const rent = await cli(
      ns.rent,
      renterHome,
      ['rent', listingKey, '--hours', '2', '--ssh-key', `${renterKey}.pub`, '--wait', '90'],
      120_000,
    )
    assert.equal(rent.code, 0, rent.stderr + rent.stdout)
    const { rentals } = await jsonCli<{ rentals: { offerId: string; ssh?: { user: string } }[] }>(
      ns.rent,
      renterHome,
      ['leases'],
    )
    offerId = rentals[0]!.offerId
    sshUser = rentals[0]!.ssh!.user
    sshConfig = await writeSshConfig()
  })

  after(async () => {
    for (const p of procs.reverse()) await p.kill().catch(() => {})
    netsim('down', prefix)
    if (hostLinkUp) spawnSync('ip', ['link', 'del', hostVeth])
    spawnSync('iptables', [
      '-w',
      '10',
      '-D',
      'DOCKER-USER',
      '-i',
      hostVeth,
      '-m',
      'comment',
      '--comment',
      ruleTag,
      '-j',
      'ACCEPT',
    ])
    const ids = spawnSync('docker', ['ps', '-aq', '--filter', `network=${dockerNetwork}`], {
      encoding: 'utf8',
    }).stdout
    for (const id of ids.split('\n').filter(Boolean)) spawnSync('docker', ['rm', '-f', '-v', id])
    spawnSync('docker', ['network', 'rm', dockerNetwork])
    // the lease firewall the provider installed for its network
    for (const chain of ['DOCKER-USER', 'INPUT']) {
      const rules = spawnSync('iptables', ['-w', '10', '-S', chain], { encoding: 'utf8' }).stdout.split('\n')
      for (const rule of rules.filter((r) => r.includes(`rpib:${dockerNetwork}`)))
        spawnSync('sh', ['-c', `iptables -w 10 ${rule.replace(/^-A /, '-D ')}`])
    }
    await rm(dir, { recursive: true, force: true })
  })

  it('the provider is not directly dialable; its listing names both relays', async () => {
    assert.equal(await canConnect(ns.rent, '192.168.77.2', 4002), false)
    assert.equal(await canConnect(ns.pub, '192.168.77.2', 4002), false)
    assert.equal(await canConnect(ns.pub, '10.77.1.2', 4002), false)
    const seen = await listing(ns.rent, renterHome)
    assert.deepEqual(
      [...seen!.listing.body.relays].sort(),
      ['ssh://10.77.0.1:2222', 'ssh://10.77.0.2:2222', ...relays.map((r) => `${r.addr}/p2p-circuit`)].sort(),
    )
  })

  it('ssh -J through relay 1 runs a command in the lease container (exit code checked)', async () => {
    const r = await nsRun(ns.rent, 'ssh', [
      '-F',
      sshConfig,
      '-J',
      'jump@10.77.0.1:2222',
      `${sshUser}@${sshName}`,
      'echo in-lease $(hostname); exit 7',
    ])
    assert.match(r.stdout, /^in-lease /, r.stderr)
    assert.equal(r.code, 7, r.stderr)
  })

  it('rpib ssh over libp2p (through a relay circuit) does the same', async () => {
    const r = await cli(
      ns.rent,
      renterHome,
      ['ssh', offerId.slice(0, 12), '-i', renterKey, 'echo via-libp2p; exit 4'],
      90_000,
    )
    assert.equal(r.stdout.trim(), 'via-libp2p', r.stderr)
    assert.equal(r.code, 4)
  })

  it('curl from the renter fetches a page from a web server inside the lease, after expose', async () => {
    // the web server runs for as long as this session (through relay 2, which survives the next test)
    const server = nsSpawn(ns.rent, 'ssh', [
      '-F',
      sshConfig,
      '-J',
      'jump@10.77.0.2:2222',
      `${sshUser}@${sshName}`,
      'mkdir -p /tmp/www && echo hello from the lease > /tmp/www/index.html && echo serving && exec httpd -f -p 80 -h /tmp/www',
    ])
    procs.push(server)
    await server.waitForLine((l) => l === 'serving', 30_000, 'the lease web server')
    const subnet = sh('docker', [
      'network',
      'inspect',
      dockerNetwork,
      '-f',
      '{{(index .IPAM.Config 0).Subnet}}',
    ]).trim()
    sh('ip', ['netns', 'exec', ns.home, 'ip', 'route', 'replace', subnet, 'via', `${linkNet}.1`])

    // a stranger cannot expose someone else's lease
    const stranger = await nsRun(
      ns.rent,
      node,
      [EXPOSE_CHILD, join(dir, 'stranger'), providerCircuit, offerId, '80'],
      60_000,
    )
    assert.equal(
      (JSON.parse(stranger.stdout) as { error?: { code: string } }).error?.code,
      'ERR_RENT_UNKNOWN_OFFER',
      stranger.stderr,
    )

    const exposed = await nsRun(
      ns.rent,
      node,
      [EXPOSE_CHILD, renterHome, providerCircuit, offerId, '80'],
      60_000,
    )
    const { urls } = JSON.parse(exposed.stdout) as { urls: string[] }
    const owner = sshName.split('.')[1]!
    const label = sshUser
    assert.deepEqual([...urls].sort(), [
      `http://${label}.${owner}.relay1.example:8080/`,
      `http://${label}.${owner}.relay2.example:8080/`,
    ])
    const host = `${label}.${owner}.relay1.example`
    const page = await nsRun(ns.rent, 'curl', [
      '-sS',
      '--max-time',
      '10',
      '--resolve',
      `${host}:8080:10.77.0.1`,
      `http://${host}:8080/index.html`,
    ])
    assert.equal(page.code, 0, page.stderr)
    assert.equal(page.stdout, 'hello from the lease\n')
  })

  it('relay 1 dies mid-session: the session ends, the listing is re-signed with relay 2 only within 10 s, and ssh -J through relay 2 works', async () => {
    const session = nsSpawn(ns.rent, 'ssh', [
      '-F',
      sshConfig,
      '-J',
      'jump@10.77.0.1:2222',
      `${sshUser}@${sshName}`,
      'echo session-started; sleep 60',
    ])
    procs.push(session)
    await session.waitForLine((l) => l === 'session-started', 20_000, 'a session through relay 1')
    await relays[0]!.proc.kill('SIGKILL')
    const killedAt = Date.now()
    assert.equal(await session.exited, 255, 'the session through the dead relay ends with an error')
    const expected = ['ssh://10.77.0.2:2222', `${relays[1]!.addr}/p2p-circuit`].sort()
    await pollUntil(
      async () => {
        const seen = await listing(ns.home, providerHome)
        return JSON.stringify([...(seen?.listing.body.relays ?? [])].sort()) === JSON.stringify(expected)
      },
      10_000 - (Date.now() - killedAt),
      'the listing re-signed with relay 2 only',
    )
    const r = await nsRun(ns.rent, 'ssh', [
      '-F',
      sshConfig,
      '-J',
      'jump@10.77.0.2:2222',
      `${sshUser}@${sshName}`,
      'echo via-relay2; exit 3',
    ])
    assert.equal(r.stdout.trim(), 'via-relay2', r.stderr)
    assert.equal(r.code, 3)
  })
})
