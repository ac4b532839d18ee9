import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { createTunnelLibp2p } from '../../src/tunnel/libp2p-node.js'
import { createSshOverLibp2p } from '../../src/tunnel/ssh-protocol.js'
import { relayLimits } from '../../src/relay/limits.js'
import { logger } from '../../src/log.js'
import { CLI_PATH } from '../helpers/cli.js'
import { newIdentity, startSshd, stopChild, tempDir, until } from './fixtures.js'

describe('a libp2p SSH session whose relay disappears', () => {
  it('ends with a clear "connection to the provider was lost" error', async () => {
    const tmp = await tempDir()
    const sshd = await startSshd(tmp.dir)
    const relay = await createTunnelLibp2p({ listen: ['/ip4/127.0.0.1/tcp/0'], relayServer: relayLimits() })
    const provider = await createTunnelLibp2p({
      privateKey: await newIdentity(),
      listen: [`${relay.getMultiaddrs()[0]!.toString()}/p2p-circuit`],
    })
    const service = createSshOverLibp2p({
      libp2p: provider,
      target: { host: '127.0.0.1', port: sshd.port },
      logger: logger('rpib:test:lost'),
    })
    try {
      await service.start()
      await until(
        () => provider.getMultiaddrs().some((a) => a.toString().includes('/p2p-circuit')),
        10_000,
        'reservation',
      )
      const addr = provider
        .getMultiaddrs()
        .find((a) => a.toString().includes('/p2p-circuit'))!
        .toString()
      const child = spawn(
        process.execPath,
        [
          CLI_PATH,
          '--home',
          `${tmp.dir}/renter`,
          'ssh',
          '--peer',
          addr,
          '--host-key',
          sshd.hostPublicKey,
          '--user',
          'root',
          '-i',
          sshd.clientKeyPath,
          '--',
          'echo started; sleep 60',
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      )
      let out = ''
      let err = ''
      child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d))
      child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d))
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
      try {
        await until(() => out.includes('started'), 60_000, 'session to start')
        await relay.stop()
        let hung: NodeJS.Timeout | undefined
        const code = await Promise.race([
          exited,
          new Promise<'hung'>((resolve) => (hung = setTimeout(() => resolve('hung'), 30_000))),
        ])
        clearTimeout(hung)
        assert.equal(code, 255, err)
        assert.match(err, /rpib: the connection to the provider was lost/)
      } finally {
        await stopChild(child)
      }
    } finally {
      await service.stop()
      await provider.stop()
      await relay.stop()
      await sshd.stop()
      await tmp.cleanup()
    }
  })
})
