// `npm start`: a throw-away local market on loopback — an embedded regtest chain (devchain) and two
// daemons on a fresh sandbox network id, with a funded wallet for the renter. Ctrl-C stops everything.
// State lives in .rpib/sandbox (wiped at every start). Run by the project's Node.js 24 (npm scripts).
import { spawn, spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdirSync, readFileSync, rmSync } from 'node:fs'
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
  process.exit(code)
}
process.on('SIGINT', () => void stop(0))
process.on('SIGTERM', () => void stop(0))

try {
  rmSync(dir, { recursive: true, force: true })
  mkdirSync(dir, { recursive: true, mode: 0o700 })
  const docker = spawnSync('docker', ['info', '--format', '{{.ServerVersion}}'], { encoding: 'utf8' })
  const dockerOk = docker.status === 0
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
  // the wallet exists before the daemon starts, so the daemon's payments service opens it
  rpib(renterHome, ['wallet', 'create', '--network', 'regtest', '--esplora-url', chainUrl])
  const address = JSON.parse(
    rpib(renterHome, ['--json', 'wallet', 'address', '--esplora-url', chainUrl]),
  ).address
  rpib(renterHome, ['devchain', 'faucet', address, '1000000', '--mine', '--url', chainUrl])
  start('renter daemon', renterHome, daemonArgs([]))
  const renter = await waitFor('the renter daemon', async () => daemonState(renterHome))
  const token = readFileSync(join(renterHome, 'api-token'), 'utf8').trim()
  const api = (path) => fetch(`${renter.apiUrl}${path}`, { headers: { authorization: `Bearer ${token}` } })
  // the owner's daemon finds the market through the renter's node (no mDNS or DHT needed on loopback)
  const p2p = await waitFor('the renter market node', async () => {
    const res = await api('/api/network')
    return res.ok ? await res.json() : undefined
  })
  const bootstrap = p2p.addresses.find((a) => a.startsWith('/ip4/127.0.0.1'))
  start('owner daemon', ownerHome, daemonArgs(bootstrap ? ['--bootstrap', bootstrap] : []))
  const owner = await waitFor('the owner daemon', async () => daemonState(ownerHome))

  const r = (cmd) => `npm run rpib -- --home ${renterHome} ${cmd}`
  process.stdout.write(`
RPi Broker sandbox is running (network ${network}).
  devchain (Esplora API)  ${chainUrl}
  renter daemon API       ${renter.apiUrl}   (token in ${join(renterHome, 'api-token')})
  owner daemon API        ${owner.apiUrl}
  renter wallet           ${address} — funded with 1,000,000 sats
  Docker                  ${dockerOk ? `engine ${docker.stdout.trim()}` : 'not available'}

Try, in another terminal:
  ${r('status')}
  ${r(`wallet balance --esplora-url ${chainUrl}`)}
  ${r('events')}
  curl -s -H "authorization: Bearer ${token}" ${renter.apiUrl}/api/wallet
  npm run rpib -- device probe
  npm run rpib -- --home ${ownerHome} status

Renting a device end to end (rpib device add / rpib rent) is being wired into the daemon next; see README.
Press Ctrl-C to stop everything.
`)
} catch (err) {
  console.error(`sandbox: ${err instanceof Error ? err.message : err}`)
  await stop(1)
}
