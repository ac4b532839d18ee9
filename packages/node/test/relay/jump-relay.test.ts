import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { connect } from 'node:net'
import ssh2 from 'ssh2'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { createReverseTunnel, type ReverseTunnel } from '../../src/tunnel/reverse-tunnel.js'
import { tunnelName } from '../../src/relay/names.js'
import { opensshPrivateKeyFromIdentity } from '../../src/relay/ssh-keys.js'
import { logger } from '../../src/log.js'
import {
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

const log = logger('rpib:test:tunnel')

describe('SSH jump relay with a provider reverse tunnel', () => {
  let tmp: Awaited<ReturnType<typeof tempDir>>
  let sshd: Sshd
  let relay: TestRelay
  const tunnels: ReverseTunnel[] = []

  before(async () => {
    tmp = await tempDir()
    sshd = await startSshd(tmp.dir)
    relay = await startJumpRelay({
      maxTunnelsPerProvider: 2,
      maxConnectionsPerSource: 8,
      maxChannelsPerConnection: 3,
    })
  })

  after(async () => {
    for (const t of tunnels) await t.stop()
    await relay?.relay.stop()
    await sshd?.stop()
    await tmp?.cleanup()
  })

  async function openTunnel(
    names: { name: string; port: number }[],
    identity?: Awaited<ReturnType<typeof newIdentity>>,
  ) {
    const id = identity ?? (await newIdentity())
    const tunnel = createReverseTunnel({
      relay: { host: relay.host, port: relay.port, hostKeyFingerprint: relay.relay.hostKeyFingerprint },
      identity: id,
      forwards: names.map((n) => ({ ...n, target: { host: '127.0.0.1', port: sshd.port } })),
      logger: log,
      backoff: { initialMs: 50, maxMs: 500 },
    })
    tunnels.push(tunnel)
    tunnel.start()
    await until(() => tunnel.status().state === 'up', 10_000, 'tunnel up')
    return { tunnel, identity: id }
  }

  it('OpenSSH ssh -J through the relay runs a command on the provider and returns its exit code', async () => {
    const id = await newIdentity()
    const name = tunnelName('lease1', id.publicKey.raw)
    const { tunnel } = await openTunnel([{ name, port: 22 }], id)
    assert.deepEqual(tunnel.status().accepted, [`${name}:22`])
    const cfg = await writeRenterSshConfig(tmp.dir, {
      relay,
      targetName: name,
      targetHostKey: sshd.hostPublicKey,
      identityFile: sshd.clientKeyPath,
    })
    const r = await run('ssh', ['-F', cfg, name, 'echo hello-from-provider; exit 7'])
    assert.equal(r.stdout.trim(), 'hello-from-provider', r.stderr)
    assert.equal(r.code, 7)
    // a 4 MiB upload through the tunnel arrives intact
    const payload = Buffer.alloc(4 * 1024 * 1024, 'x')
    const up = await run('ssh', ['-F', cfg, name, 'wc -c'], payload)
    assert.equal(up.stdout.trim(), String(payload.length), up.stderr)
    assert.ok(relay.relay.stats().bytesToProviders >= payload.length)
  })

  it('hands tunnelled channels straight to an in-process server (serve target) without a TCP hop', async () => {
    const id = await newIdentity()
    const name = tunnelName('echo', id.publicKey.raw)
    const sources: string[] = []
    const tunnel = createReverseTunnel({
      relay: { host: relay.host, port: relay.port },
      identity: id,
      forwards: [
        {
          name,
          port: 7,
          target: {
            serve: (stream, source) => {
              sources.push(source)
              stream.pipe(stream)
            },
          },
        },
      ],
      logger: log,
    })
    tunnels.push(tunnel)
    tunnel.start()
    await until(() => tunnel.status().state === 'up', 10_000, 'tunnel up')
    const cfg = await writeRenterSshConfig(tmp.dir, {
      relay,
      targetName: name,
      targetHostKey: sshd.hostPublicKey,
      identityFile: sshd.clientKeyPath,
    })
    // `ssh -W` gives stdio straight onto the relayed channel, as a ProxyJump hop does
    const r = await run(
      'ssh',
      ['-F', cfg, '-W', `${name}:7`, `jump@${relay.host}`, '-p', String(relay.port)],
      'ping\n',
    )
    assert.equal(r.stdout, 'ping\n', r.stderr)
    assert.deepEqual(sources, [`relay ${relay.host}:${relay.port}`])
  })

  it('refuses a renter asking for a name nobody registered', async () => {
    const stranger = await newIdentity()
    const name = tunnelName('nobody', stranger.publicKey.raw)
    const before = relay.relay.stats().refused.unknownName
    const cfg = await writeRenterSshConfig(tmp.dir, {
      relay,
      targetName: name,
      targetHostKey: sshd.hostPublicKey,
      identityFile: sshd.clientKeyPath,
    })
    const r = await run('ssh', ['-F', cfg, name, 'true'])
    assert.equal(r.code, 255)
    assert.match(r.stderr, /forwarding failed|administratively prohibited|open failed/i)
    assert.equal(relay.relay.stats().refused.unknownName, before + 1)
  })

  it("refuses a forward for a name bound to another provider's key", async () => {
    const victim = await newIdentity()
    const attacker = await newIdentity()
    const victimName = tunnelName('lease9', victim.publicKey.raw)
    const ownName = tunnelName('mine', attacker.publicKey.raw)
    const before = relay.relay.stats().refused.notOwner
    const { tunnel } = await openTunnel(
      [
        { name: victimName, port: 22 },
        { name: ownName, port: 22 },
      ],
      attacker,
    )
    assert.deepEqual(tunnel.status().refused, [`${victimName}:22`])
    assert.deepEqual(tunnel.status().accepted, [`${ownName}:22`])
    assert.equal(relay.relay.stats().refused.notOwner, before + 1)
    assert.equal(relay.relay.hasTunnel(victimName, 22), false)
  })

  it('caps the tunnels one provider may hold', async () => {
    const id = await newIdentity()
    const names = ['a', 'b', 'c'].map((l) => ({ name: tunnelName(l, id.publicKey.raw), port: 22 }))
    const before = relay.relay.stats().refused.tunnelCap
    const { tunnel } = await openTunnel(names, id)
    assert.equal(tunnel.status().accepted.length, 2)
    assert.equal(tunnel.status().refused.length, 1)
    assert.equal(relay.relay.stats().refused.tunnelCap, before + 1)
  })

  it('refuses a provider login whose key does not match the peer id it claims', async () => {
    const claimed = await newIdentity()
    const actual = await newIdentity()
    const before = relay.relay.stats().refused.auth
    const client = new ssh2.Client()
    const err = await new Promise<Error>((resolve) => {
      client.on('ready', () => resolve(new Error('unexpectedly authenticated')))
      client.on('error', resolve)
      client.connect({
        host: relay.host,
        port: relay.port,
        username: peerIdFromPrivateKey(claimed).toString(),
        privateKey: opensshPrivateKeyFromIdentity(actual),
        hostVerifier: () => true,
      })
    })
    client.end()
    assert.match(err.message, /authentication methods failed/i)
    assert.ok(relay.relay.stats().refused.auth > before)
  })

  it('refuses a renter (jump user) that asks the relay for a forward', async () => {
    const id = await newIdentity()
    const client = new ssh2.Client()
    await new Promise<void>((resolve, reject) => {
      client.on('ready', resolve)
      client.on('error', reject)
      client.connect({ host: relay.host, port: relay.port, username: 'jump', hostVerifier: () => true })
    })
    const err = await new Promise<Error | undefined>((resolve) =>
      client.forwardIn(tunnelName('x', id.publicKey.raw), 22, (e) => resolve(e)),
    )
    client.end()
    assert.ok(err != null, 'a renter must not register forwards')
  })

  it('caps the channels one renter connection may open', async () => {
    const id = await newIdentity()
    const name = tunnelName('chan', id.publicKey.raw)
    await openTunnel([{ name, port: 22 }], id)
    const before = relay.relay.stats().refused.channelCap
    const client = new ssh2.Client()
    await new Promise<void>((resolve, reject) => {
      client.on('ready', resolve)
      client.on('error', reject)
      client.connect({ host: relay.host, port: relay.port, username: 'jump', hostVerifier: () => true })
    })
    try {
      const results = await Promise.all(
        Array.from(
          { length: 5 },
          () =>
            new Promise<boolean>((resolve) =>
              client.forwardOut('127.0.0.1', 0, name, 22, (err) => resolve(err == null)),
            ),
        ),
      )
      assert.equal(results.filter(Boolean).length, 3)
      assert.equal(relay.relay.stats().refused.channelCap, before + 2)
    } finally {
      client.end()
    }
  })

  it('caps connections per source address', async () => {
    const before = relay.relay.stats().refused.sourceCap
    const sockets = []
    try {
      // tunnels opened by earlier tests hold some connections from 127.0.0.1 already; fill the rest
      for (let i = 0; i < 10; i++) {
        const s = connect(relay.port, relay.host)
        s.on('error', () => {})
        sockets.push(s)
        await new Promise<void>((resolve) => s.once('connect', () => resolve()))
      }
      await until(() => relay.relay.stats().refused.sourceCap > before, 5_000, 'source cap refusal')
      const closedByRelay = await new Promise<boolean>((resolve) => {
        const s = connect(relay.port, relay.host)
        sockets.push(s)
        s.on('error', () => resolve(true))
        s.once('close', () => resolve(true))
        s.once('data', () => resolve(false))
      })
      assert.equal(closedByRelay, true)
    } finally {
      for (const s of sockets) s.destroy()
    }
  })
})
