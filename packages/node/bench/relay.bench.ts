// Relay bench: bulk throughput and keystroke round-trip latency of one OpenSSH session, direct vs.
// through the SSH jump relay (`ssh -J`) vs. over libp2p through a circuit relay (`rpib proxy`).
// The relay and the provider tunnel run as real `rpib relay` / `rpib tunnel` processes on loopback;
// the SSH server is OpenSSH. Prints ratios to direct (goal: jump relay ≥ 0.8 of direct throughput).
// Two runs: on loopback (CPU-bound: every hop's crypto shares two cores), and, when root and the
// netsim tools are present, in network namespaces where the provider sits behind a NAT on a 100 Mbit/s
// uplink (the realistic case: the link, not the relay, limits).
import { spawn, spawnSync } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { loadavg } from 'node:os'
import { fileURLToPath } from 'node:url'
import { printTable, type BenchRow } from './table.js'
import { run, startSshd, tempDir, stopChild } from '../test/relay/fixtures.js'

const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url))
const NETSIM = fileURLToPath(new URL('../../../../scripts/netsim', import.meta.url))
/** the provider's uplink in the link-limited run, like a home connection */
const LINK = '100mbit'
const BULK_MIB = 64
const LINK_BULK_MIB = 24
const ROUND_TRIPS = 200
const REPS = 2

function lineWaiter(child: ReturnType<typeof spawn>) {
  let buf = ''
  const lines: string[] = []
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    buf += d
    let i
    while ((i = buf.indexOf('\n')) >= 0) {
      lines.push(buf.slice(0, i))
      buf = buf.slice(i + 1)
    }
  })
  return async (match: (l: string) => boolean, timeoutMs: number): Promise<string> => {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const hit = lines.find(match)
      if (hit != null) return hit
      if (Date.now() > deadline || child.exitCode != null) throw new Error('process did not become ready')
      await new Promise((r) => setTimeout(r, 50))
    }
  }
}

/**
 * Uploads `bytes` of zeros into `cat > /dev/null` and returns the transfer time in ms as the remote
 * shell measured it (so connection set-up, which differs per path, is not counted).
 */
function timedUpload(ssh: string[], args: string[], bytes: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(ssh[0]!, [...ssh.slice(1), ...args, 'date +%s%N; cat > /dev/null; date +%s%N'], {
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    let out = ''
    let err = ''
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d))
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d))
    child.on('close', (code) => {
      const [t0, t1] = out
        .trim()
        .split('\n')
        .map((l) => BigInt(l))
      if (code !== 0 || t0 == null || t1 == null) reject(new Error(`ssh failed (${code}): ${err}`))
      else resolve(Number(t1 - t0) / 1e6)
    })
    const chunk = Buffer.alloc(1024 * 1024)
    let left = bytes
    const pump = (): void => {
      while (left > 0) {
        left -= chunk.length
        if (!child.stdin.write(chunk)) return void child.stdin.once('drain', pump)
      }
      child.stdin.end()
    }
    pump()
  })
}

/** Median round trip of one byte through `cat` inside an open session. */
async function roundTrip(ssh: string[], args: string[]): Promise<number> {
  const child = spawn(ssh[0]!, [...ssh.slice(1), ...args, 'cat'], { stdio: ['pipe', 'pipe', 'pipe'] })
  const samples: number[] = []
  try {
    const once = (): Promise<number> =>
      new Promise((resolve) => {
        const start = process.hrtime.bigint()
        child.stdout.once('data', () => resolve(Number(process.hrtime.bigint() - start) / 1e6))
        child.stdin.write('k')
      })
    await once() // warm-up (includes connection set-up)
    for (let i = 0; i < ROUND_TRIPS; i++) samples.push(await once())
  } finally {
    child.stdin.end()
    await stopChild(child)
  }
  samples.sort((a, b) => a - b)
  return samples[Math.floor(samples.length / 2)]!
}

async function measure(ssh: string[], args: string[], mib: number): Promise<{ mbps: number; rttMs: number }> {
  let best = 0
  for (let i = 0; i < REPS; i++) {
    const secs = Math.max(await timedUpload(ssh, args, mib * 1024 * 1024), 1) / 1000
    best = Math.max(best, (mib * 1.048576) / secs)
  }
  return { mbps: best, rttMs: await roundTrip(ssh, args) }
}

interface Paths {
  /** command prefix that runs OpenSSH (possibly inside a namespace) */
  ssh: string[]
  direct: string[]
  jump: string[]
  p2p: string[]
}

async function startRelayAndProvider(opts: {
  home: string
  inRelayNs: string[]
  inProviderNs: string[]
  relayHost: string
  sshdPort: number
  providerListen: string
}): Promise<{ relayInfo: RelayInfo; name: string; circuit: string; children: ReturnType<typeof spawn>[] }> {
  const children: ReturnType<typeof spawn>[] = []
  const [rCmd, ...rPre] = [...opts.inRelayNs, process.execPath]
  const relay = spawn(
    rCmd!,
    [
      ...rPre,
      CLI,
      '--home',
      join(opts.home, 'relay'),
      '--json',
      'relay',
      '--listen-host',
      opts.relayHost,
      '--ssh-port',
      opts.inRelayNs.length > 0 ? '2222' : '0',
      '--http-port',
      '0',
      '--p2p-port',
      '0',
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  )
  children.push(relay)
  const relayInfo = JSON.parse(await lineWaiter(relay)((l) => l.includes('"ready"'), 60_000)) as RelayInfo
  const [pCmd, ...pPre] = [...opts.inProviderNs, process.execPath]
  const p2pRelay = relayInfo.p2p.find((a) => a.includes(`/ip4/${opts.relayHost}/`)) ?? relayInfo.p2p[0]!
  const provider = spawn(
    pCmd!,
    [
      ...pPre,
      CLI,
      '--home',
      join(opts.home, 'provider'),
      '--json',
      'tunnel',
      '--relay',
      `${opts.relayHost}:${relayInfo.ssh.port}=${relayInfo.ssh.hostKeyFingerprint}`,
      '--want',
      '1',
      '--forward',
      `bench:22=127.0.0.1:${opts.sshdPort}`,
      '--ssh-target',
      `127.0.0.1:${opts.sshdPort}`,
      '--p2p-relay',
      p2pRelay,
      '--p2p-listen',
      opts.providerListen,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  )
  children.push(provider)
  const waitProvider = lineWaiter(provider)
  const ready = JSON.parse(await waitProvider((l) => l.includes('"ready"'), 60_000)) as {
    peerId: string
    names: string[]
  }
  await waitProvider((l) => l.includes('"relays"') && l.includes(opts.relayHost), 30_000)
  return {
    relayInfo,
    name: ready.names[0]!.replace(/:22$/, ''),
    circuit: `${p2pRelay}/p2p-circuit/p2p/${ready.peerId}`,
    children,
  }
}

interface RelayInfo {
  ssh: { port: number; hostKeyFingerprint: string; hostPublicKey: string }
  p2p: string[]
}

async function writeClientConfig(dir: string, clientKey: string, knownHosts: string[]): Promise<string> {
  const kh = join(dir, 'known_hosts')
  await writeFile(kh, knownHosts.join('\n') + '\n')
  const config = join(dir, 'ssh_config')
  await writeFile(
    config,
    [
      'Host *',
      `  UserKnownHostsFile ${kh}`,
      '  StrictHostKeyChecking yes',
      '  BatchMode yes',
      `  IdentityFile ${clientKey}`,
      '  User root',
      '  LogLevel ERROR',
    ].join('\n') + '\n',
  )
  return config
}

async function measureAll(paths: Paths, mib: number): Promise<BenchRow[]> {
  const load = loadavg()[0]!
  const direct = await measure(paths.ssh, paths.direct, mib)
  const jump = await measure(paths.ssh, paths.jump, mib)
  const p2p = await measure(paths.ssh, paths.p2p, mib)
  return [
    { metric: 'throughput direct', value: direct.mbps, unit: 'MB/s' },
    { metric: 'throughput via ssh -J relay', value: jump.mbps, unit: 'MB/s' },
    { metric: 'throughput via libp2p relay', value: p2p.mbps, unit: 'MB/s' },
    { metric: 'throughput ratio jump/direct', value: jump.mbps / direct.mbps, unit: 'x', goal: '>= 0.8' },
    { metric: 'throughput ratio libp2p/direct', value: p2p.mbps / direct.mbps, unit: 'x' },
    { metric: 'keystroke RTT direct (median)', value: direct.rttMs, unit: 'ms' },
    { metric: 'keystroke RTT via ssh -J relay', value: jump.rttMs, unit: 'ms' },
    { metric: 'keystroke RTT via libp2p relay', value: p2p.rttMs, unit: 'ms' },
    { metric: 'RTT ratio jump/direct', value: jump.rttMs / direct.rttMs, unit: 'x' },
    { metric: 'RTT ratio libp2p/direct', value: p2p.rttMs / direct.rttMs, unit: 'x' },
    // all processes share the machine's cores: numbers taken under load are not comparable
    { metric: 'load average (1 min) at start', value: load, unit: '' },
  ]
}

async function loopbackBench(): Promise<void> {
  const tmp = await tempDir('rpib-relay-bench-')
  const children: ReturnType<typeof spawn>[] = []
  try {
    const sshd = await startSshd(tmp.dir)
    const up = await startRelayAndProvider({
      home: tmp.dir,
      inRelayNs: [],
      inProviderNs: [],
      relayHost: '127.0.0.1',
      sshdPort: sshd.port,
      providerListen: '/ip4/127.0.0.1/tcp/0',
    })
    children.push(...up.children)
    const config = await writeClientConfig(tmp.dir, sshd.clientKeyPath, [
      `[127.0.0.1]:${up.relayInfo.ssh.port} ${up.relayInfo.ssh.hostPublicKey}`,
      `[127.0.0.1]:${sshd.port} ${sshd.hostPublicKey}`,
      `${up.name} ${sshd.hostPublicKey}`,
      `provider ${sshd.hostPublicKey}`,
    ])
    const proxy = `${process.execPath} ${CLI} --home ${join(tmp.dir, 'renter')} proxy ${up.circuit}`
    const rows = await measureAll(
      {
        ssh: ['ssh'],
        direct: ['-F', config, '-p', String(sshd.port), '127.0.0.1'],
        jump: ['-F', config, '-J', `jump@127.0.0.1:${up.relayInfo.ssh.port}`, up.name],
        p2p: ['-F', config, '-o', `ProxyCommand=${proxy}`, '-o', 'HostKeyAlias=provider', 'provider'],
      },
      BULK_MIB,
    )
    printTable(
      `relay, loopback: OpenSSH session, ${BULK_MIB} MiB upload (best of ${REPS}), ${ROUND_TRIPS} keystrokes`,
      rows,
    )
    children.push(...[])
    await sshd.stop()
  } finally {
    for (const c of children.reverse()) await stopChild(c)
    await tmp.cleanup()
  }
}

/**
 * Provider in the netsim "home" namespace behind its NAT router, uplink shaped to LINK with tbf on both
 * ends of the home link. "Direct" is a port forward on the home router (what a provider with a public
 * port would offer); the relay paths go out through the same shaped link to a relay in "pub".
 */
async function linkLimitedBench(): Promise<void> {
  const missing =
    process.getuid?.() !== 0
      ? 'root'
      : ['tc', 'iptables', 'ip'].find((t) => spawnSync('sh', ['-c', `command -v ${t}`]).status !== 0)
  if (missing != null) {
    process.stdout.write(`\nrelay, ${LINK} link: skipped (needs ${missing})\n`)
    return
  }
  const prefix = `rpibb${process.pid.toString(36).slice(-4)}`
  const ns = (n: string) => `${prefix}-${n}`
  const inNs = (n: string) => ['ip', 'netns', 'exec', ns(n)]
  const tmp = await tempDir('rpib-relay-bench-net-')
  const children: ReturnType<typeof spawn>[] = []
  const must = async (cmd: string[]) => {
    const r = await run(cmd[0]!, cmd.slice(1))
    if (r.code !== 0) throw new Error(`${cmd.join(' ')} failed: ${r.stderr}`)
  }
  try {
    await must([NETSIM, 'up', prefix])
    for (const [n, dev] of [
      ['hrt', 'w0'],
      ['pub', 'h0'],
    ] as const) {
      await must([
        ...inNs(n),
        'tc',
        'qdisc',
        'add',
        'dev',
        dev,
        'root',
        'tbf',
        'rate',
        LINK,
        'burst',
        '64kb',
        'latency',
        '50ms',
      ])
    }
    // the "direct" baseline: a port forward on the home router to the provider's sshd
    await must([
      ...inNs('hrt'),
      'iptables',
      '-t',
      'nat',
      '-A',
      'PREROUTING',
      '-i',
      'w0',
      '-p',
      'tcp',
      '--dport',
      '2222',
      '-j',
      'DNAT',
      '--to-destination',
      '192.168.77.2:2222',
    ])
    await must([
      ...inNs('hrt'),
      'iptables',
      '-I',
      'FORWARD',
      '-i',
      'w0',
      '-o',
      'l0',
      '-p',
      'tcp',
      '-d',
      '192.168.77.2',
      '--dport',
      '2222',
      '-j',
      'ACCEPT',
    ])
    const sshd = await startSshd(tmp.dir, '0.0.0.0', { netns: ns('home'), port: 2222 })
    const up = await startRelayAndProvider({
      home: tmp.dir,
      inRelayNs: inNs('pub'),
      inProviderNs: inNs('home'),
      relayHost: '10.77.0.1',
      sshdPort: 2222,
      providerListen: '/ip4/0.0.0.0/tcp/4002',
    })
    children.push(...up.children)
    const config = await writeClientConfig(tmp.dir, sshd.clientKeyPath, [
      `[10.77.0.1]:2222 ${up.relayInfo.ssh.hostPublicKey}`,
      `[10.77.1.2]:2222 ${sshd.hostPublicKey}`,
      `${up.name} ${sshd.hostPublicKey}`,
      `provider ${sshd.hostPublicKey}`,
    ])
    const proxy = `${process.execPath} ${CLI} --home ${join(tmp.dir, 'renter')} proxy ${up.circuit}`
    const rows = await measureAll(
      {
        ssh: [...inNs('rent'), 'ssh'],
        direct: ['-F', config, '-p', '2222', '10.77.1.2'],
        jump: ['-F', config, '-J', 'jump@10.77.0.1:2222', up.name],
        p2p: ['-F', config, '-o', `ProxyCommand=${proxy}`, '-o', 'HostKeyAlias=provider', 'provider'],
      },
      LINK_BULK_MIB,
    )
    printTable(
      `relay, provider behind NAT on a ${LINK} uplink (netsim): ${LINK_BULK_MIB} MiB upload (best of ${REPS}), ${ROUND_TRIPS} keystrokes`,
      rows,
    )
    await sshd.stop()
  } finally {
    for (const c of children.reverse()) await stopChild(c)
    await run(NETSIM, ['down', prefix])
    await tmp.cleanup()
  }
}

await loopbackBench()
await linkLimitedBench()
