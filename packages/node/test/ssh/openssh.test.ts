import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { request } from 'node:http'
import { createServer } from 'node:net'
import { Duplex } from 'node:stream'
import type { ClientChannel } from 'ssh2'
import { after, before, describe, it } from 'node:test'
import {
  connectSsh2,
  dockerSkipReason,
  makeRenterKey,
  runProcess,
  startTestProvider,
  waitFor,
  type TestProvider,
} from '../containers/harness.js'

const skip = await dockerSkipReason()

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address()
      srv.close(() => resolve(typeof address === 'object' && address != null ? address.port : 0))
    })
  })
}

function httpGet(port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path: '/index.html', timeout: 2_000 }, (res) => {
      let body = ''
      res.setEncoding('utf8').on('data', (d: string) => (body += d))
      res.on('end', () => resolve(body))
    })
    req.on('error', () => resolve(undefined))
    req.on('timeout', () => req.destroy())
    req.end()
  })
}

describe('SSH into a lease with the OpenSSH client (busybox image)', { skip }, () => {
  let provider: TestProvider
  before(async () => {
    provider = await startTestProvider()
    await Promise.all([provider.addLease('alpha'), provider.addLease('bravo')])
  })
  after(async () => {
    await provider?.close()
  })

  it('runs a command in the lease container and returns its exit code, stdout and stderr', async () => {
    const result = await provider.ssh('alpha', ['echo out; echo err >&2; hostname; exit 42'])
    assert.equal(result.code, 42, result.stderr)
    assert.equal(result.stdout, 'out\nlease\n')
    assert.match(result.stderr, /^err$/m)
  })

  it('passes stdin through and ends it on EOF', async () => {
    const input = 'line one\nline two\n'.repeat(1000)
    const result = await provider.ssh('alpha', ['wc -c'], { input })
    assert.equal(result.code, 0, result.stderr)
    assert.equal(result.stdout.trim(), String(Buffer.byteLength(input)))
  })

  it('reports a process killed by a signal as exit-signal', async () => {
    const client = await connectSsh2(provider, 'alpha')
    try {
      const exit = await new Promise<{ code: number | null; signal: string | undefined }>(
        (resolve, reject) => {
          client.exec('kill -9 $$', (err, channel) => {
            if (err != null) return reject(err)
            channel.on('exit', (code: number | null, signal?: string) => resolve({ code, signal }))
            channel.resume()
          })
        },
      )
      assert.deepEqual(exit, { code: null, signal: 'SIGKILL' })
    } finally {
      client.end()
    }
  })

  it('gives `ssh -tt` a pty with the client terminal size', async () => {
    const sshCmd = [
      'ssh',
      ...provider.sshOptions(),
      '-tt',
      '-p',
      String(provider.server.port),
      'alpha@127.0.0.1',
      'stty size; tty',
    ]
    const quoted = sshCmd.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ')
    // script(1) gives ssh a real terminal whose size we set first
    const result = await runProcess('script', ['-qec', `stty rows 37 cols 111; ${quoted}`, '/dev/null'])
    assert.equal(result.code, 0, result.stdout + result.stderr)
    assert.match(result.stdout, /37 111/)
    assert.match(result.stdout, /\/dev\/pts\/\d+/)
  })

  it('follows window-change requests on a pty shell', async () => {
    const client = await connectSsh2(provider, 'alpha')
    try {
      const channel = await new Promise<ClientChannel>((resolve, reject) =>
        client.shell({ term: 'xterm-256color', rows: 24, cols: 80 }, (err, ch) =>
          err != null ? reject(err) : resolve(ch),
        ),
      )
      let out = ''
      channel.on('data', (d: Buffer) => (out += d.toString()))
      const closed = new Promise<void>((resolve) => channel.once('close', () => resolve()))
      channel.write('stty size; echo $TERM\n')
      await waitFor(async () => (/^24 80\r?$/m.test(out) ? true : undefined), 10_000, 'the initial size')
      channel.setWindow(52, 140, 0, 0)
      channel.write('stty size\n')
      await waitFor(async () => (/^52 140\r?$/m.test(out) ? true : undefined), 10_000, 'the new size')
      channel.write('exit\n')
      await closed
      assert.match(out, /xterm-256color/)
      assert.match(out, /\[rpib\] lease alpha ends at /)
    } finally {
      client.end()
    }
  })

  it('accepts only allowlisted environment variables', async () => {
    const result = await runProcess(
      'ssh',
      [
        ...provider.sshOptions(),
        '-o',
        'SendEnv=LANG',
        '-o',
        'SendEnv=RPIB_SECRET',
        '-p',
        String(provider.server.port),
        'alpha@127.0.0.1',
        'echo "[$LANG][$RPIB_SECRET]"',
      ],
      { env: { ...process.env, LANG: 'C.UTF-8', RPIB_SECRET: 'leak' } },
    )
    assert.equal(result.code, 0, result.stderr)
    assert.equal(result.stdout, '[C.UTF-8][]\n')
  })

  it('forwards `ssh -L lease:PORT` to a server on the lease network address', async () => {
    const started = await provider.ssh('alpha', [
      'echo forwarded-hello > /tmp/index.html && httpd -p 0.0.0.0:8080 -h /tmp',
    ])
    assert.equal(started.code, 0, started.stderr)
    const localPort = await freePort()
    const tunnel = spawn(
      'ssh',
      [
        ...provider.sshOptions(),
        '-N',
        '-L',
        `127.0.0.1:${localPort}:lease:8080`,
        '-p',
        String(provider.server.port),
        'alpha@127.0.0.1',
      ],
      { stdio: 'ignore' },
    )
    try {
      const body = await waitFor(() => httpGet(localPort), 15_000, 'the forwarded HTTP server')
      assert.equal(body, 'forwarded-hello\n')
    } finally {
      tunnel.kill()
    }
  })

  it('forwards `ssh -L localhost:PORT` to a server bound to the lease loopback only', async () => {
    const started = await provider.ssh('alpha', [
      'mkdir -p /tmp/lo && echo loopback-hello > /tmp/lo/index.html && httpd -p 127.0.0.1:8081 -h /tmp/lo',
    ])
    assert.equal(started.code, 0, started.stderr)
    const localPort = await freePort()
    const tunnel = spawn(
      'ssh',
      [
        ...provider.sshOptions(),
        '-N',
        '-L',
        `127.0.0.1:${localPort}:localhost:8081`,
        '-p',
        String(provider.server.port),
        'alpha@127.0.0.1',
      ],
      { stdio: 'ignore' },
    )
    try {
      const body = await waitFor(() => httpGet(localPort), 15_000, 'the loopback-only HTTP server')
      assert.equal(body, 'loopback-hello\n')
    } finally {
      tunnel.kill()
    }
  })

  it('refuses forwarding to anything but the lease itself', async () => {
    const client = await connectSsh2(provider, 'alpha')
    try {
      const error = await new Promise<Error | undefined>((resolve) => {
        // an address this test did not create is never contacted: the server refuses before connecting
        client.forwardOut('127.0.0.1', 0, '192.0.2.1', 80, (err) => resolve(err ?? undefined))
      })
      assert.ok(error != null, 'forward to a foreign address must fail')
    } finally {
      client.end()
    }
  })

  it('keeps leases apart: the same key cannot see the other lease', async () => {
    await provider.ssh('bravo', ['echo bravo-file > /root/mine'])
    const result = await provider.ssh('alpha', ['cat /root/mine 2>&1; hostname'])
    assert.doesNotMatch(result.stdout, /bravo-file/)
  })

  it('ends the container process when the client disconnects', async () => {
    const child = spawn(
      'ssh',
      [...provider.sshOptions(), '-p', String(provider.server.port), 'alpha@127.0.0.1', 'sleep 4242'],
      {
        stdio: 'ignore',
      },
    )
    const listSleepers = async (): Promise<string> =>
      (await provider.ssh('alpha', ['ps -o args | grep "^sleep 4242" || true'])).stdout
    await waitFor(
      async () => ((await listSleepers()).includes('sleep 4242') ? true : undefined),
      10_000,
      'sleep to start',
    )
    child.kill('SIGKILL')
    await waitFor(
      async () => ((await listSleepers()).includes('sleep 4242') ? undefined : true),
      10_000,
      'sleep to end',
    )
  })

  it('serves an already-connected stream handed over with injectSocket (relay / libp2p path)', async () => {
    // a plain Duplex, not a socket: what a libp2p stream or a relay tunnel looks like to the server
    const relay = createServer((socket) => {
      const stream = new Duplex({
        write(chunk: Buffer, _enc, done) {
          socket.write(chunk, done)
        },
        final(done) {
          socket.end(done)
        },
        read() {
          socket.resume()
        },
      })
      socket.on('data', (d: Buffer) => {
        if (!stream.push(d)) socket.pause()
      })
      socket.on('end', () => stream.push(null))
      socket.on('close', () => stream.destroy())
      stream.on('close', () => socket.destroy())
      provider.server.injectSocket(stream, 'relay:test')
    })
    await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve))
    const address = relay.address()
    const relayPort = typeof address === 'object' && address != null ? address.port : 0
    try {
      const result = await runProcess('ssh', [
        ...provider.sshOptions(),
        '-o',
        `HostKeyAlias=[127.0.0.1]:${provider.server.port}`,
        '-p',
        String(relayPort),
        'alpha@127.0.0.1',
        'echo via-injected-stream; exit 7',
      ])
      assert.equal(result.code, 7, result.stderr)
      assert.equal(result.stdout, 'via-injected-stream\n')
    } finally {
      await new Promise<void>((resolve) => relay.close(() => resolve()))
    }
  })

  it('refuses a key that is not the lease key', async () => {
    const stranger = await makeRenterKey(provider.dir, 'stranger')
    const result = await provider.ssh('alpha', ['true'], { key: stranger.path })
    assert.equal(result.code, 255)
    assert.match(result.stderr, /Permission denied/)
  })

  it('refuses an unknown lease id', async () => {
    const result = await provider.ssh('nosuchlease', ['true'])
    assert.equal(result.code, 255)
    assert.match(result.stderr, /Permission denied/)
  })

  it('refuses an expired lease', async () => {
    provider.leases.set('expired', {
      leaseId: 'expired',
      expiresAt: Date.now() - 1_000,
      authorizedKeys: [provider.renter.publicKey],
    })
    const result = await provider.ssh('expired', ['true'])
    assert.equal(result.code, 255)
    assert.match(result.stderr, /Permission denied/)
  })

  it('refuses agent forwarding', async () => {
    const client = await connectSsh2(provider, 'alpha')
    try {
      const refused = await new Promise<boolean>((resolve, reject) => {
        client.exec('true', (err, channel) => {
          if (err != null) return reject(err)
          // ssh2's client asks for auth-agent@openssh.com on the session; the reply is a channel failure
          const ch = channel as unknown as {
            _client: { _protocol: { openssh_agentForward(id: number, wantReply: boolean): void } }
            outgoing: { id: number }
          }
          channel.once('close', () => undefined)
          client.once('error', reject)
          ;(channel as unknown as { _callbacks: ((failed: boolean) => void)[] })._callbacks.push((failed) =>
            resolve(failed),
          )
          ch._client._protocol.openssh_agentForward(ch.outgoing.id, true)
          channel.resume()
        })
      })
      assert.equal(refused, true)
    } finally {
      client.end()
    }
  })
})

describe('SSH failure rate limit', { skip }, () => {
  it('blocks a source after too many failed attempts, even with the right key', async () => {
    const provider = await startTestProvider({ maxFailures: 3 })
    try {
      provider.leases.set('ghost', {
        leaseId: 'ghost',
        expiresAt: Date.now() + 60_000,
        authorizedKeys: [provider.renter.publicKey],
      })
      const stranger = await makeRenterKey(provider.dir, 'stranger')
      for (let i = 0; i < 3; i++) {
        const refused = await provider.ssh('ghost', ['true'], { key: stranger.path })
        assert.equal(refused.code, 255)
      }
      const blocked = await provider.ssh('ghost', ['true'])
      assert.equal(blocked.code, 255)
      assert.doesNotMatch(
        blocked.stderr,
        /Permission denied \(publickey\)\.\n$/,
        'blocked before authentication',
      )
    } finally {
      await provider.close()
    }
  })
})
