import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { request } from 'node:http'
import { createServer, type Server } from 'node:net'
import { after, before, describe, it } from 'node:test'
import { promisify } from 'node:util'
import { spawn, type ChildProcess } from 'node:child_process'
import { randomInt } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { dockerSkipReason, startTestProvider, waitFor, type TestProvider } from './harness.js'

const execFileAsync = promisify(execFile)
const skip = await dockerSkipReason()

function httpGet(host: string, port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const req = request({ host, port, path: '/index.html', timeout: 2_000 }, (res) => {
      let body = ''
      res.setEncoding('utf8').on('data', (d: string) => (body += d))
      res.on('end', () => resolve(body))
    })
    req.on('error', () => resolve(undefined))
    req.on('timeout', () => req.destroy())
    req.end()
  })
}

/** busybox's static wget crashes in a container; a raw request through nc works and times out in 2 s. */
function httpFromLease(host: string, port: number): string {
  return `printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | nc -w 2 ${host} ${port} 2>&1`
}

interface LanNamespace {
  ip: string
  destroy(): Promise<void>
}

async function ip(args: string[]): Promise<string> {
  return (await execFileAsync('ip', args, { timeout: 10_000 })).stdout
}

/** A network namespace with a web server, reachable from the host over a veth pair on 10.213.N.0/30. */
async function createLanNamespace(): Promise<LanNamespace> {
  const used = await ip(['-4', 'addr'])
  let subnet = ''
  for (let i = 0; i < 20 && subnet === ''; i++) {
    const candidate = `10.213.${randomInt(1, 254)}`
    if (!used.includes(`${candidate}.`)) subnet = candidate
  }
  assert.notEqual(subnet, '', 'no free 10.213.x.0/30 subnet for the LAN namespace')
  const tag = randomInt(0, 0xffffff).toString(16).padStart(6, '0')
  const ns = `rpibt-${tag}`
  const hostSide = `rpv-${tag}`
  const nsSide = `rpn-${tag}`
  const dir = await mkdtemp(join(tmpdir(), 'rpib-lan-'))
  let server: ChildProcess | undefined
  const destroy = async (): Promise<void> => {
    server?.kill('SIGKILL')
    await ip(['link', 'del', hostSide]).catch(() => undefined)
    await ip(['netns', 'del', ns]).catch(() => undefined)
    await rm(dir, { recursive: true, force: true })
  }
  try {
    await ip(['netns', 'add', ns])
    await ip(['link', 'add', hostSide, 'type', 'veth', 'peer', 'name', nsSide])
    await ip(['link', 'set', nsSide, 'netns', ns])
    await ip(['addr', 'add', `${subnet}.1/30`, 'dev', hostSide])
    await ip(['link', 'set', hostSide, 'up'])
    await ip(['-n', ns, 'addr', 'add', `${subnet}.2/30`, 'dev', nsSide])
    await ip(['-n', ns, 'link', 'set', nsSide, 'up'])
    await ip(['-n', ns, 'link', 'set', 'lo', 'up'])
    await ip(['-n', ns, 'route', 'add', 'default', 'via', `${subnet}.1`])
    await writeFile(join(dir, 'index.html'), 'lan-secret\n')
    server = spawn('ip', ['netns', 'exec', ns, 'busybox', 'httpd', '-f', '-p', '0.0.0.0:8080', '-h', dir], {
      stdio: 'ignore',
    })
    return { ip: `${subnet}.2`, destroy }
  } catch (err) {
    await destroy()
    throw err
  }
}

/**
 * Every address contacted here belongs to a network or container this test created: the lease network,
 * a throw-away "owner LAN" network namespace with one web server, and the host's address on the lease bridge.
 */
describe('lease network isolation', { skip }, () => {
  let provider: TestProvider
  let lan: LanNamespace | undefined
  let lanIp = ''
  let hostServer: Server | undefined
  let hostPort = 0
  let gateway = ''
  let serverLeaseIp = ''

  const inLease = async (leaseId: string, script: string): Promise<{ code: number; out: string }> => {
    const exec = await provider.runtime.exec(leaseId, { cmd: ['/bin/sh', '-c', script], tty: false })
    let out = ''
    exec.stdout.setEncoding('utf8').on('data', (d: string) => (out += d))
    exec.stderr?.setEncoding('utf8').on('data', (d: string) => (out += d))
    exec.stdin.end()
    return { code: (await exec.exited()).code, out }
  }

  before(async () => {
    provider = await startTestProvider()
    gateway = (await provider.runtime.ensureNetwork()).gateway
    await Promise.all([provider.addLease('server'), provider.addLease('client')])
    serverLeaseIp = (await provider.runtime.getLease('server'))?.ipAddress ?? ''
    const started = await inLease(
      'server',
      'echo lease-secret > /tmp/index.html && httpd -p 0.0.0.0:8080 -h /tmp',
    )
    assert.equal(started.code, 0, started.out)

    // a stand-in for the owner's LAN: a network namespace behind a veth pair, routed by the host like a
    // real LAN interface (a second Docker bridge would not do: Docker isolates its bridges by itself)
    lan = await createLanNamespace()
    lanIp = lan.ip

    // a service of the device owner, listening on every host address
    hostServer = createServer((socket) => socket.end('host-secret\n'))
    await new Promise<void>((resolve) => hostServer?.listen(0, '0.0.0.0', resolve))
    const address = hostServer.address()
    hostPort = typeof address === 'object' && address != null ? address.port : 0
  })

  after(async () => {
    await lan?.destroy()
    await new Promise<void>((resolve) => (hostServer != null ? hostServer.close(() => resolve()) : resolve()))
    await provider?.close()
  })

  it('lets the host reach a lease (the path `ssh -L` uses)', async () => {
    const body = await waitFor(() => httpGet(serverLeaseIp, 8080), 10_000, 'the lease web server')
    assert.equal(body, 'lease-secret\n')
  })

  it('can fetch over HTTP from inside a lease (so the refusals below are real)', async () => {
    const result = await inLease('server', httpFromLease('127.0.0.1', 8080))
    assert.match(result.out, /lease-secret/)
  })

  it('keeps a lease from reaching another lease', async () => {
    const result = await inLease('client', httpFromLease(serverLeaseIp, 8080))
    assert.notEqual(result.code, 0)
    assert.doesNotMatch(result.out, /lease-secret/)
  })

  it("keeps a lease off the owner's LAN (a host the device itself can reach)", async () => {
    const control = await waitFor(() => httpGet(lanIp, 8080), 10_000, 'the LAN web server')
    assert.equal(control, 'lan-secret\n')
    const result = await inLease('client', httpFromLease(lanIp, 8080))
    assert.notEqual(result.code, 0)
    assert.doesNotMatch(result.out, /lan-secret/)
  })

  it("keeps a lease from the device's own services (bridge gateway)", async () => {
    const result = await inLease('client', `echo | nc -w 2 ${gateway} ${hostPort} 2>&1`)
    assert.doesNotMatch(result.out, /host-secret/)
  })

  it('installs tagged iptables rules for the lease bridge', async () => {
    const { bridge } = await provider.runtime.ensureNetwork()
    const { stdout } = await execFileAsync('iptables', ['-w', '10', '-S', 'DOCKER-USER'])
    for (const cidr of ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '169.254.0.0/16']) {
      assert.match(
        stdout,
        new RegExp(`-A DOCKER-USER -d ${cidr.replace(/\./g, '\\.')} -i ${bridge} .*-j DROP`),
      )
    }
    const input = (await execFileAsync('iptables', ['-w', '10', '-S', 'INPUT'])).stdout
    assert.match(input, new RegExp(`-A INPUT -i ${bridge} .*-j DROP`))
  })
})
