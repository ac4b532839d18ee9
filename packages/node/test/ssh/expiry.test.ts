import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { describe, it } from 'node:test'
import { dockerSkipReason, startTestProvider, waitFor } from '../containers/harness.js'

const skip = await dockerSkipReason()

describe('lease expiry seen from an open SSH session', { skip }, () => {
  it('warns open sessions before the end and disconnects them when the lease ends', async () => {
    const provider = await startTestProvider({ expiryCheckIntervalMs: 100, expiryWarningsMs: [60_000] })
    try {
      await provider.addLease('brief', { expiresAt: Date.now() + 60_000 })
      const child = spawn(
        'ssh',
        [
          ...provider.sshOptions(),
          '-p',
          String(provider.server.port),
          'brief@127.0.0.1',
          'echo started; sleep 60',
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      )
      let stdout = ''
      let stderr = ''
      child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d))
      child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
      const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)))
      await waitFor(async () => (stdout.includes('started') ? true : undefined), 10_000, 'the session')
      await waitFor(
        async () => (/\[rpib\] this lease ends in 1 min/.test(stderr) ? true : undefined),
        5_000,
        'the warning',
      )
      // the rental flow ends the lease (expiry reached): the server notices and disconnects
      provider.leases.delete('brief')
      const code = await exited
      assert.notEqual(code, 0)
      assert.match(stderr, /\[rpib\] this lease has ended; disconnecting/)
      const again = await provider.ssh('brief', ['true'])
      assert.equal(again.code, 255)
    } finally {
      await provider.close()
    }
  })

  it('warns a new non-interactive session when the lease is about to end', async () => {
    const provider = await startTestProvider({ expiryWarningsMs: [120_000] })
    try {
      await provider.addLease('soon', { expiresAt: Date.now() + 90_000 })
      const result = await provider.ssh('soon', ['echo ok'])
      assert.equal(result.code, 0)
      assert.equal(result.stdout, 'ok\n')
      assert.match(result.stderr, /\[rpib\] this lease ends in (1|2) min/)
    } finally {
      await provider.close()
    }
  })
})
