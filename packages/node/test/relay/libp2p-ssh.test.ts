import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import type { Libp2p } from '@libp2p/interface'
import { createTunnelLibp2p } from '../../src/tunnel/libp2p-node.js'
import { createSshOverLibp2p, dialSsh, type SshOverLibp2p } from '../../src/tunnel/ssh-protocol.js'
import { streamAsDuplex } from '../../src/tunnel/stream-pipe.js'
import { relayLimits } from '../../src/relay/limits.js'
import { fingerprintOfBlob, parsePublicKeyLine } from '../../src/relay/ssh-keys.js'
import { logger } from '../../src/log.js'
import { CLI_PATH, runCli } from '../helpers/cli.js'
import { newIdentity, startSshd, tempDir, until, type Sshd } from './fixtures.js'

describe('SSH over libp2p (/rpib/ssh/1.0.0) through a circuit relay', () => {
  let tmp: Awaited<ReturnType<typeof tempDir>>
  let sshd: Sshd
  let relay: Libp2p
  let provider: Libp2p
  let service: SshOverLibp2p
  let circuitAddr: string
  let hostFingerprint: string

  before(async () => {
    tmp = await tempDir()
    sshd = await startSshd(tmp.dir)
    hostFingerprint = fingerprintOfBlob(parsePublicKeyLine(sshd.hostPublicKey))
    relay = await createTunnelLibp2p({ listen: ['/ip4/127.0.0.1/tcp/0'], relayServer: relayLimits() })
    const relayAddr = relay.getMultiaddrs()[0]!.toString()
    // the provider listens ONLY through the relay: no direct address exists
    provider = await createTunnelLibp2p({
      privateKey: await newIdentity(),
      listen: [`${relayAddr}/p2p-circuit`],
    })
    service = createSshOverLibp2p({
      libp2p: provider,
      target: { host: '127.0.0.1', port: sshd.port },
      logger: logger('rpib:test:ssh-stream'),
    })
    await service.start()
    await until(
      () => provider.getMultiaddrs().some((a) => a.toString().includes('/p2p-circuit')),
      10_000,
      'relay reservation',
    )
    circuitAddr = provider
      .getMultiaddrs()
      .find((a) => a.toString().includes('/p2p-circuit'))!
      .toString()
  })

  after(async () => {
    await service?.stop()
    await provider?.stop()
    await relay?.stop()
    await sshd?.stop()
    await tmp?.cleanup()
  })

  const sshArgs = (hostKey: string, ...command: string[]) => [
    '--home',
    tmp.dir + '/renter',
    'ssh',
    '--peer',
    circuitAddr,
    '--host-key',
    hostKey,
    '--user',
    'root',
    '-i',
    sshd.clientKeyPath,
    '--',
    ...command,
  ]

  it('rpib ssh runs a command over the relayed stream with the host key pinned by fingerprint', async () => {
    const r = await runCli(sshArgs(hostFingerprint, 'echo over-libp2p; exit 5'))
    assert.equal(r.stdout.trim(), 'over-libp2p', r.stderr)
    assert.equal(r.code, 5)
  })

  it('carries far more than the 128 KiB default circuit limit (rpib proxy as ProxyCommand)', async () => {
    const payload = Buffer.alloc(3 * 1024 * 1024, 'y')
    const knownHosts = `${tmp.dir}/kh_proxy`
    const { writeFile } = await import('node:fs/promises')
    await writeFile(knownHosts, `provider ${sshd.hostPublicKey}\n`)
    const proxy = `${process.execPath} ${CLI_PATH} --home ${tmp.dir}/renter proxy ${circuitAddr}`
    const result = await new Promise<{ code: number | null; out: string; err: string }>((resolve, reject) => {
      const child = spawn(
        'ssh',
        [
          '-o',
          `ProxyCommand=${proxy}`,
          '-o',
          'HostKeyAlias=provider',
          '-o',
          `UserKnownHostsFile=${knownHosts}`,
          '-o',
          'StrictHostKeyChecking=yes',
          '-o',
          'BatchMode=yes',
          '-i',
          sshd.clientKeyPath,
          'root@provider',
          'wc -c',
        ],
        { stdio: ['pipe', 'pipe', 'pipe'], timeout: 60_000 },
      )
      let out = ''
      let err = ''
      child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d))
      child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d))
      child.on('error', reject)
      child.on('close', (code) => resolve({ code, out, err }))
      child.stdin.end(payload)
    })
    assert.equal(result.code, 0, result.err)
    assert.equal(result.out.trim(), String(payload.length))
  })

  it('refuses to connect when the host key does not match the pinned one', async () => {
    const wrong = 'SHA256:' + 'A'.repeat(43)
    const r = await runCli(sshArgs(wrong, 'true'))
    assert.equal(r.code, 1)
    assert.match(r.stderr, /does not match the listing/)
    const otherKey = (await import('node:child_process')).execFileSync('cat', [`${tmp.dir}/client_key.pub`], {
      encoding: 'utf8',
    })
    const r2 = await runCli(sshArgs(otherKey.split(' ').slice(0, 2).join(' '), 'true'))
    assert.equal(r2.code, 255)
    assert.match(r2.stderr, /host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED/i)
  })

  it('hands libp2p SSH streams straight to an in-process server (serve target)', async () => {
    const echoProvider = await createTunnelLibp2p({ listen: ['/ip4/127.0.0.1/tcp/0'] })
    const echo = createSshOverLibp2p({
      libp2p: echoProvider,
      target: { serve: (stream) => stream.pipe(stream) },
      logger: logger('rpib:test:ssh-stream'),
    })
    const renter = await createTunnelLibp2p({ listen: [] })
    try {
      await echo.start()
      const stream = await dialSsh(renter, echoProvider.getMultiaddrs()[0]!)
      const duplex = streamAsDuplex(stream)
      const reply = new Promise<string>((resolve) =>
        duplex.once('data', (d: Buffer) => resolve(d.toString())),
      )
      duplex.write('over libp2p')
      assert.equal(await reply, 'over libp2p')
      assert.equal(echo.active(), 1)
      duplex.end()
      await until(() => echo.active() === 0, 5_000, 'stream to close')
    } finally {
      await echo.stop()
      await renter.stop()
      await echoProvider.stop()
    }
  })

  it('reports bad addresses and unreachable providers as one clear line', async () => {
    const bad = await runCli(['--home', tmp.dir + '/renter', 'proxy', 'not-a-multiaddr'])
    assert.equal(bad.code, 1)
    assert.match(bad.stderr, /^rpib: "not-a-multiaddr" is neither a lease id .* nor a multiaddr/)
    const badAddr = await runCli(['--home', tmp.dir + '/renter', 'proxy', '/ip4/999/tcp'])
    assert.equal(badAddr.code, 1)
    assert.match(badAddr.stderr, /^rpib: "\/ip4\/999\/tcp" is not a multiaddr/)
    // a lease id goes through the renter's daemon, and says so when none runs
    const noDaemon = await runCli(['--home', tmp.dir + '/renter', 'proxy', 'abcdef012345'])
    assert.equal(noDaemon.code, 1)
    assert.match(noDaemon.stderr, /daemon/)
    const gone = await runCli([
      '--home',
      tmp.dir + '/renter',
      'proxy',
      '/ip4/127.0.0.1/tcp/1/p2p/12D3KooWAm9svG5k8NcGBvuFvT5DFJAXQS71HYw3W9GLDXng5Z5p',
    ])
    assert.equal(gone.code, 1)
    assert.match(gone.stderr, /^rpib: could not open an SSH stream to/)
  })

  it('ssh-config prints a Host block and stores the pinned key', async () => {
    const r = await runCli([
      '--home',
      tmp.dir + '/renter',
      '--json',
      'ssh-config',
      '--alias',
      'my-pi',
      '--host-key',
      sshd.hostPublicKey,
      '--user',
      'lease1',
      '--peer',
      circuitAddr,
    ])
    assert.equal(r.code, 0, r.stderr)
    const out = JSON.parse(r.stdout) as { config: string; knownHostsFile: string }
    assert.match(out.config, /^Host my-pi\n/)
    assert.match(out.config, /ProxyCommand rpib --home \S+ proxy \/ip4\//)
    assert.match(out.config, /StrictHostKeyChecking yes/)
    const { readFile } = await import('node:fs/promises')
    assert.equal((await readFile(out.knownHostsFile, 'utf8')).trim(), `my-pi ${sshd.hostPublicKey}`)
    const usage = await runCli([
      '--home',
      tmp.dir + '/renter',
      'ssh-config',
      '--alias',
      'x',
      '--host-key',
      'junk',
      '--user',
      'u',
      '--peer',
      circuitAddr,
    ])
    assert.equal(usage.code, 1)
    assert.match(usage.stderr, /expected an SSH public key/)
  })
})
