// `npm start`: a throw-away local market on loopback — an embedded regtest chain (devchain) and two
// daemons on a fresh sandbox network id, with a funded wallet for the renter. Ctrl-C stops everything.
// State lives in .rpib/sandbox (wiped at every start). Run by the project's Node.js 24 (npm scripts).
import { spawn, spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { join, resolve } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'

const root = resolve(import.meta.dirname, '..')
const cli = join(root, 'packages/node/dist/src/cli/main.js')
const dir = resolve(process.env.RPIB_SANDBOX_DIR ?? join(root, '.rpib/sandbox'))
const network = `sandbox-${randomBytes(3).toString('hex')}`
const passphrase = 'sandbox-wallet'
const children = []

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

function start(name, home, args) {
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
      console.error(`\n${name} stopped unexpectedly (${signal ?? code}); its last output:\n${tail}`)
      void stop(1)
    }
  })
  children.push({ name, child })
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

const SANDBOX_DOCKER_NETWORK = 'rpib-sandbox'
let dockerOk = false

/** Removes the sandbox's lease containers, volumes, network and firewall rules. */
async function removeSandboxContainers() {
  try {
    const { createDockerRuntime } = await import('../packages/node/dist/src/containers/index.js')
    const runtime = createDockerRuntime({
      networkName: SANDBOX_DOCKER_NETWORK,
      stateDir: join(dir, 'owner', 'provider', 'volumes'),
    })
    await runtime.reconcile(Date.now(), [])
    await runtime.removeNetwork()
  } catch (err) {
    console.error(
      `sandbox: could not remove its lease containers: ${err instanceof Error ? err.message : err}`,
    )
  }
}

const daemonState = (home) => JSON.parse(readFileSync(join(home, 'daemon.json'), 'utf8'))

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

  const renterHome = join(dir, 'renter')
  const ownerHome = join(dir, 'owner')
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
  // wallets exist before the daemons start, so their payments services open them
  const wallet = (home) => {
    rpib(home, ['wallet', 'create', '--network', 'regtest', '--esplora-url', chainUrl])
    return JSON.parse(rpib(home, ['--json', 'wallet', 'address', '--esplora-url', chainUrl])).address
  }
  const address = wallet(renterHome)
  wallet(ownerHome)
  rpib(renterHome, ['devchain', 'faucet', address, '1000000', '--mine', '--url', chainUrl])

  // leases on the sandbox run on a fast clock: an "hour" lasts a minute
  const leaseClock = { secondsPerHour: 60, zeroConfMaxSats: 1_000_000, dockerNetwork: SANDBOX_DOCKER_NETWORK }
  let ownerArgs = []
  if (dockerOk) {
    process.stdout.write('building the tiny busybox base image if needed…\n')
    spawnSync(join(root, 'scripts/build-base-image'), ['--only', 'busybox'], {
      stdio: 'ignore',
      timeout: 120_000,
    })
    const images = ['rpib/base:bookworm', 'rpib/busybox:latest'].filter(
      (i) => spawnSync('docker', ['image', 'inspect', i], { stdio: 'ignore' }).status === 0,
    )
    const device = { id: 'sandbox-pi', name: 'Sandbox Pi', satsPerHour: 1000, maxHours: 24, images }
    writeFileSync(
      join(ownerHome, 'config.json'),
      JSON.stringify({ provider: { ...leaseClock, devices: [device] } }),
    )
    ownerArgs = ['--provider']
  } else {
    writeFileSync(join(ownerHome, 'config.json'), JSON.stringify({ provider: leaseClock }))
  }
  writeFileSync(join(renterHome, 'config.json'), JSON.stringify({ provider: leaseClock }))

  start('owner daemon', ownerHome, daemonArgs(ownerArgs))
  const owner = await waitFor('the owner daemon', async () => daemonState(ownerHome))
  const ownerToken = readFileSync(join(ownerHome, 'api-token'), 'utf8').trim()
  const ownerApi = (path) =>
    fetch(`${owner.apiUrl}${path}`, { headers: { authorization: `Bearer ${ownerToken}` } })
  // the renter finds the market through the owner's node (no mDNS or DHT needed on loopback)
  const p2p = await waitFor(
    'the owner market node',
    async () => {
      const res = await ownerApi(dockerOk ? '/api/provider/rentals' : '/api/network')
      return res.ok ? await (await ownerApi('/api/network')).json() : undefined
    },
    120_000,
  )
  const bootstrap = p2p.addresses.find((a) => a.startsWith('/ip4/127.0.0.1'))
  start('renter daemon', renterHome, daemonArgs(bootstrap ? ['--bootstrap', bootstrap] : []))
  const renter = await waitFor('the renter daemon', async () => daemonState(renterHome))
  const token = readFileSync(join(renterHome, 'api-token'), 'utf8').trim()

  const r = (cmd) => `npm run rpib -- --home ${renterHome} ${cmd}`
  const listing = `${owner.peerId}/sandbox-pi`
  process.stdout.write(`
RPi Broker sandbox is running (network ${network}).
  devchain (Esplora API)  ${chainUrl}   (mines every 2 s)
  renter daemon API       ${renter.apiUrl}   (token in ${join(renterHome, 'api-token')})
  owner daemon API        ${owner.apiUrl}   ${dockerOk ? `provider of ${listing}` : '(no Docker: cannot host leases)'}
  renter wallet           ${address} — funded with 1,000,000 sats
  lease clock             an "hour" lasts 60 s here

Try, in another terminal:
  ${r('market list')}
${
  dockerOk
    ? `  ${r(`rent ${listing} --hours 2 --ssh-key ~/.ssh/id_ed25519.pub`)}
      (prints the rpib ssh command that logs you into the lease; ssh-keygen -t ed25519 makes a key)
  ${r('leases')}
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
