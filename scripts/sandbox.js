// `npm start`: a throw-away local market on loopback — an embedded regtest chain (devchain), a relay, two
// provider daemons renting out this machine (Docker), and a renter daemon with a funded wallet, all on a
// fresh sandbox network id. Ctrl-C stops everything and removes the lease containers.
// State lives in .rpib/sandbox (wiped at every start; RPIB_SANDBOX_DIR moves it). Run by Node.js 24.
import { spawn, spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { join, resolve } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'

const root = resolve(import.meta.dirname, '..')
const cli = join(root, 'packages/node/dist/src/cli/main.js')
const dir = resolve(process.env.RPIB_SANDBOX_DIR ?? join(root, '.rpib/sandbox'))
// Docker networks (and so lease container namespaces) are named after this; tests use their own
const name = process.env.RPIB_SANDBOX_NAME ?? 'sandbox'
const network = `sandbox-${randomBytes(3).toString('hex')}`
const passphrase = 'sandbox-wallet'
const children = []

/** The two owners: each rents out this machine as one device, on its own Docker network. */
const OWNERS = [
  { key: 'a', deviceId: 'pi-a', name: 'Sandbox Pi A', satsPerHour: 1000, description: 'living-room Pi' },
  { key: 'b', deviceId: 'laptop-b', name: 'Sandbox laptop B', satsPerHour: 1500, description: 'old laptop' },
].map((o) => ({ ...o, home: join(dir, `owner-${o.key}`), dockerNetwork: `rpib-${name}-${o.key}` }))

function rpib(home, args, opts = {}) {
  const r = spawnSync(process.execPath, [cli, '--home', home, ...args], {
    encoding: 'utf8',
    env: { ...process.env, RPIB_WALLET_PASSPHRASE: passphrase },
    timeout: 60_000,
    ...opts,
  })
  if (r.status !== 0) throw new Error(`rpib ${args.join(' ')} failed: ${(r.stderr || r.stdout).trim()}`)
  return r.stdout
}

function start(label, home, args) {
  const child = spawn(process.execPath, [cli, '--home', home, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, RPIB_WALLET_PASSPHRASE: passphrase },
  })
  let tail = ''
  const keep = (d) => (tail = (tail + d).slice(-4000))
  child.stdout.setEncoding('utf8').on('data', keep)
  child.stderr.setEncoding('utf8').on('data', keep)
  child.on('exit', (code, signal) => {
    if (!stopping) {
      console.error(`\n${label} stopped unexpectedly (${signal ?? code}); its last output:\n${tail}`)
      void stop(1)
    }
  })
  children.push({ label, child })
  return child
}

function freePort() {
  return new Promise((res, rej) => {
    const srv = createServer()
    srv.once('error', rej)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address()
      srv.close(() => res(port))
    })
  })
}

async function waitFor(what, check, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    const v = await check().catch(() => undefined)
    if (v !== undefined) return v
    await delay(200)
  }
  throw new Error(`timed out waiting for ${what}`)
}

const daemonState = (home) => JSON.parse(readFileSync(join(home, 'daemon.json'), 'utf8'))

/** GET on a daemon's local API with its token; undefined until it answers 2xx. */
async function api(home, path) {
  const state = daemonState(home)
  const token = readFileSync(join(home, 'api-token'), 'utf8').trim()
  const res = await fetch(`${state.apiUrl}${path}`, { headers: { authorization: `Bearer ${token}` } })
  return res.ok ? await res.json() : undefined
}

let dockerOk = false

/** Removes the sandbox's lease containers, volumes, networks and firewall rules. */
async function removeSandboxContainers() {
  try {
    const { createDockerRuntime } = await import('../packages/node/dist/src/containers/index.js')
    for (const o of OWNERS) {
      const runtime = createDockerRuntime({
        networkName: o.dockerNetwork,
        stateDir: join(o.home, 'provider', 'volumes'),
      })
      await runtime.reconcile(Date.now(), [])
      await runtime.removeNetwork()
    }
  } catch (err) {
    console.error(
      `sandbox: could not remove its lease containers: ${err instanceof Error ? err.message : err}`,
    )
  }
}

let stopping = false
async function stop(code = 0) {
  if (stopping) return
  stopping = true
  process.stdout.write('\nstopping the sandbox…\n')
  for (const { child } of children.reverse()) if (child.exitCode === null) child.kill('SIGTERM')
  await Promise.all(
    children.map(({ child }) =>
      child.exitCode !== null || child.signalCode !== null
        ? undefined
        : new Promise((res) => {
            const t = setTimeout(() => child.kill('SIGKILL'), 10_000)
            child.once('exit', () => res(clearTimeout(t)))
          }),
    ),
  )
  if (dockerOk) await removeSandboxContainers()
  process.stdout.write('sandbox stopped\n')
  process.exit(code)
}
process.on('SIGINT', () => void stop(0))
process.on('SIGTERM', () => void stop(0))

try {
  rmSync(dir, { recursive: true, force: true })
  mkdirSync(dir, { recursive: true, mode: 0o700 })
  const docker = spawnSync('docker', ['info', '--format', '{{.ServerVersion}}'], { encoding: 'utf8' })
  dockerOk = docker.status === 0
  if (!dockerOk) {
    console.log(
      'Docker engine not reachable: devices cannot host leases here (apt-get install docker.io, then start dockerd).',
    )
  }

  process.stdout.write(`starting a local sandbox market ${network} in ${dir}\n`)
  const chainPort = await freePort()
  const chainUrl = `http://127.0.0.1:${chainPort}`
  start('devchain', join(dir, 'chain'), [
    'devchain',
    'start',
    '--memory',
    '--port',
    String(chainPort),
    '--mine-interval',
    '2000',
  ])
  await waitFor('the devchain', async () =>
    (await fetch(`${chainUrl}/blocks/tip/height`)).ok ? true : undefined,
  )

  const daemonArgs = (extra) => [
    'daemon',
    '--network',
    network,
    '--api-port',
    '0',
    '--listen',
    '/ip4/127.0.0.1/tcp/0',
    '--bitcoin-backend',
    'devchain',
    '--bitcoin-url',
    chainUrl,
    ...extra,
  ]
  const writeConfig = (home, config) => {
    mkdirSync(home, { recursive: true, mode: 0o700 })
    writeFileSync(join(home, 'config.json'), JSON.stringify(config))
  }
  // leases on the sandbox run on a fast clock: an "hour" lasts a minute
  const leaseClock = { secondsPerHour: 60, zeroConfMaxSats: 1_000_000 }

  // the relay: circuit relay for libp2p, SSH jump server and HTTP ingress, and everyone's bootstrap peer
  const relayHome = join(dir, 'relay')
  const relayPorts = { ssh: await freePort(), http: await freePort() }
  writeConfig(relayHome, {
    relay: { listenHost: '127.0.0.1', sshPort: relayPorts.ssh, httpPort: relayPorts.http },
    provider: leaseClock,
  })
  start('relay daemon', relayHome, daemonArgs(['--relay']))
  const relayNet = await waitFor('the relay daemon', () => api(relayHome, '/api/network'), 120_000)
  const relayInfo = await waitFor('the relay service', () => api(relayHome, '/api/relay'), 60_000)
  const bootstrap = relayNet.addresses.find((a) => a.startsWith('/ip4/127.0.0.1'))
  // providers hold reverse SSH tunnels on it and name it in their listings; sites are <name>.localhost
  const relay = {
    ssh: `127.0.0.1:${relayPorts.ssh}`,
    hostKeyFingerprint: relayInfo.ssh.hostKeyFingerprint,
    httpPort: relayPorts.http,
    httpDomain: 'localhost',
    ...(bootstrap ? { multiaddr: `${bootstrap}/p2p-circuit` } : {}),
  }
  const joinMarket = bootstrap ? ['--bootstrap', bootstrap] : []

  // wallets exist before the daemons start, so their payments services open them
  const wallet = (home) => {
    rpib(home, ['wallet', 'create', '--network', 'regtest', '--esplora-url', chainUrl])
    return JSON.parse(rpib(home, ['--json', 'wallet', 'address', '--esplora-url', chainUrl])).address
  }
  const renterHome = join(dir, 'renter')
  const address = wallet(renterHome)
  rpib(renterHome, ['devchain', 'faucet', address, '1000000', '--mine', '--url', chainUrl])
  writeConfig(renterHome, { provider: leaseClock })

  let images = []
  if (dockerOk) {
    process.stdout.write('building the tiny busybox base image if needed…\n')
    spawnSync(join(root, 'scripts/build-base-image'), ['--only', 'busybox'], {
      stdio: 'ignore',
      timeout: 120_000,
    })
    images = ['rpib/busybox:latest', 'rpib/base:bookworm'].filter(
      (i) => spawnSync('docker', ['image', 'inspect', i], { stdio: 'ignore' }).status === 0,
    )
  }
  for (const o of OWNERS) {
    wallet(o.home)
    const device = {
      id: o.deviceId,
      name: o.name,
      description: o.description,
      satsPerHour: o.satsPerHour,
      maxHours: 24,
      ...(images.length > 0 ? { images } : {}),
    }
    writeConfig(o.home, {
      provider: {
        ...leaseClock,
        dockerNetwork: o.dockerNetwork,
        devices: [device],
        relays: [relay],
      },
    })
    start(`owner ${o.key} daemon`, o.home, daemonArgs(['--provider', ...joinMarket]))
  }
  start('renter daemon', renterHome, daemonArgs(joinMarket))
  const renter = await waitFor('the renter daemon', async () => daemonState(renterHome))
  const owners = await Promise.all(
    OWNERS.map((o) => waitFor(`owner ${o.key}`, async () => daemonState(o.home))),
  )
  const listings = OWNERS.map((o, i) => `${owners[i].peerId}/${o.deviceId}`)
  if (dockerOk) {
    // ready when the renter's market shows both devices
    await waitFor(
      'both devices in the renter’s market',
      async () => {
        const got = await api(renterHome, '/api/market/listings')
        const keys = new Set((got?.entries ?? []).map((l) => l.key))
        return listings.every((k) => keys.has(k)) ? true : undefined
      },
      180_000,
    )
  }

  const token = readFileSync(join(renterHome, 'api-token'), 'utf8').trim()
  const r = (cmd) => `npm run rpib -- --home ${renterHome} ${cmd}`
  process.stdout.write(`
RPi Broker sandbox is running (network ${network}).
  devchain (Esplora API)  ${chainUrl}   (mines every 2 s)
  relay                   ssh -J jump@127.0.0.1:${relayPorts.ssh}, HTTP ingress on :${relayPorts.http}
  owner A                 ${dockerOk ? listings[0] : '(no Docker: cannot host leases)'}   ${OWNERS[0].satsPerHour} sats/h
  owner B                 ${dockerOk ? listings[1] : '(no Docker: cannot host leases)'}   ${OWNERS[1].satsPerHour} sats/h
  renter daemon API       ${renter.apiUrl}   (token in ${join(renterHome, 'api-token')})
  renter wallet           ${address} — funded with 1,000,000 sats
  lease clock             an "hour" lasts 60 s here

Try, in another terminal (ssh-keygen -t ed25519 makes the key if you have none):
  ${r('market list')}
${
  dockerOk
    ? `  ${r(`rent ${listings[0]} --hours 2 --ssh-key ~/.ssh/id_ed25519.pub`)}
  ${r('leases')}
  ${r('ssh <lease> -- uname -a')}          (the lease id printed by rent)
  ${r('lease extend <lease> --hours 1')}
  ${r('lease expose <lease> 80')}            (after starting a web server on port 80 in the lease)
  ${r(`rent ${listings[0]} --hours 2 --replicas 2 --distinct-owners`)}
`
    : ''
}  ${r('status')}
  ${r('events')}
  curl -s -H "authorization: Bearer ${token}" ${renter.apiUrl}/api/wallet

Press Ctrl-C to stop everything (lease containers included).
`)
} catch (err) {
  console.error(`sandbox: ${err instanceof Error ? err.message : err}`)
  await stop(1)
}
