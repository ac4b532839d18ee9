import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createDevchain } from '../../src/payments/devchain/server.js'
import { DaemonStateSchema } from '../../src/daemon/state-file.js'
import { runCli } from '../helpers/cli.js'
import { waitFor } from '../api/http.js'
import { spawnRpib, within } from './process.js'

const PASSPHRASE = { RPIB_WALLET_PASSPHRASE: 'daemon-test-passphrase', RPIB_MDNS: 'false' }

test('the daemon opens the wallet with the configured chain backend and reports its balance', async () => {
  const home = await mkdtemp(join(tmpdir(), 'rpib-daemon-pay-'))
  const devchain = createDevchain({ port: 0 })
  await devchain.start()
  try {
    const created = await runCli(
      ['--home', home, 'wallet', 'create', '--esplora-url', devchain.url],
      PASSPHRASE,
    )
    assert.equal(created.code, 0, created.stderr)
    const addr = await runCli(
      ['--home', home, '--json', 'wallet', 'address', '--esplora-url', devchain.url],
      PASSPHRASE,
    )
    const { address } = JSON.parse(addr.stdout) as { address: string }
    await devchain.faucet(address, 123_456)
    await devchain.mine(1)

    const daemon = spawnRpib(
      [
        '--home',
        home,
        'daemon',
        '--api-port',
        '0',
        '--listen',
        '/ip4/127.0.0.1/tcp/0',
        '--bitcoin-url',
        devchain.url,
      ],
      PASSPHRASE,
    )
    try {
      const state = await waitFor(
        async () => {
          const text = await readFile(join(home, 'daemon.json'), 'utf8').catch(() => undefined)
          return text != null ? DaemonStateSchema.parse(JSON.parse(text)) : undefined
        },
        20_000,
        'daemon.json',
      )
      const headers = { authorization: `Bearer ${(await readFile(join(home, 'api-token'), 'utf8')).trim()}` }
      const wallet = await waitFor(
        async () => {
          const res = await fetch(`${state.apiUrl}/api/wallet`, { headers })
          return res.ok
            ? ((await res.json()) as { network: string; unlocked: boolean; balance: { totalSats: number } })
            : undefined
        },
        20_000,
        'the payments service',
      )
      assert.equal(wallet.network, 'regtest')
      assert.equal(wallet.unlocked, true)
      assert.equal(wallet.balance.totalSats, 123_456)
      const invoices = await fetch(`${state.apiUrl}/api/invoices`, { headers })
      assert.deepEqual(await invoices.json(), { invoices: [] })

      // the backend goes away: a clear 503, and the daemon lives on
      await devchain.stop()
      const down = await fetch(`${state.apiUrl}/api/wallet`, { headers })
      assert.equal(down.status, 503)
      assert.equal(((await down.json()) as { code: string }).code, 'ERR_BACKEND_UNREACHABLE')
      daemon.child.kill('SIGTERM')
      assert.deepEqual(await within(daemon.exited, 10_000, 'daemon exit'), { code: 0, signal: null })
    } finally {
      if (daemon.child.exitCode == null) daemon.child.kill('SIGKILL')
    }
  } finally {
    await devchain.stop().catch(() => undefined)
    await rm(home, { recursive: true, force: true })
  }
})
