import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ConfigError, loadConfig, resolveConfig, type ConfigSource } from '../../src/config/config.js'
import { DEFAULT_API_PORT } from '../../src/config/schema.js'
import { flagsLayer } from '../../src/cli/daemon.js'
import { runCli } from '../helpers/cli.js'

async function withHome<T>(fn: (home: string) => Promise<T>): Promise<T> {
  const home = await mkdtemp(join(tmpdir(), 'rpib-config-'))
  try {
    return await fn(home)
  } finally {
    await rm(home, { recursive: true, force: true })
  }
}

test('without any file, env or flag the defaults are safe: regtest, devchain, loopback API', async () => {
  await withHome(async (home) => {
    const { config, configFile } = await loadConfig({ home, env: {} })
    assert.equal(configFile, undefined)
    assert.equal(config.network, 'regtest')
    assert.deepEqual(config.roles, { provider: false, relay: false })
    assert.deepEqual(config.api, { host: '127.0.0.1', port: DEFAULT_API_PORT, sseHeartbeatSeconds: 15 })
    assert.equal(config.bitcoin.backend, 'devchain')
    assert.equal(config.bitcoin.network, 'regtest')
    assert.equal(config.market.replicate, 'all')
    assert.equal(config.presence.intervalSeconds, 30)
    assert.equal(config.log.level, 'info')
    assert.ok(config.p2p.listen.length > 0)
  })
})

test('precedence: defaults < config file < RPIB_* env < flags, key by key', async () => {
  await withHome(async (home) => {
    await writeFile(
      join(home, 'config.json'),
      JSON.stringify({
        network: 'sandbox-abcd1234',
        api: { port: 1111 },
        log: { level: 'warn' },
        presence: { intervalSeconds: 60 },
        p2p: { bootstrap: ['/ip4/127.0.0.1/tcp/4001'] },
      }),
    )
    const env = {
      RPIB_API_PORT: '2222',
      RPIB_LOG_LEVEL: 'debug',
      RPIB_PROVIDER: 'yes',
      RPIB_BOOTSTRAP: '/ip4/127.0.0.2/tcp/1, /ip4/127.0.0.3/tcp/2',
    }
    const flags = flagsLayer({ apiPort: '3333', relay: true, timeUnit: '6' })
    const { config, configFile } = await loadConfig({ home, env, flags })
    assert.equal(configFile, join(home, 'config.json'))
    assert.equal(config.network, 'sandbox-abcd1234') // file only
    assert.equal(config.presence.intervalSeconds, 60) // file only
    assert.equal(config.log.level, 'debug') // env beats file
    assert.equal(config.api.port, 3333) // flag beats env and file
    assert.equal(config.provider.secondsPerHour, 6) // --time-unit
    assert.deepEqual(config.roles, { provider: true, relay: true })
    assert.deepEqual(config.p2p.bootstrap, ['/ip4/127.0.0.2/tcp/1', '/ip4/127.0.0.3/tcp/2']) // lists are replaced
    assert.equal(config.api.host, '127.0.0.1') // untouched defaults survive the merge
  })
})

test('property: for any layering of api.port, the highest layer that sets it wins', () => {
  const port = fc.option(fc.integer({ min: 0, max: 65535 }), { nil: undefined })
  fc.assert(
    fc.property(port, port, port, (file, env, flag) => {
      const layer = (label: string, p: number | undefined): ConfigSource => ({
        label,
        layer: p == null ? {} : { api: { port: p } },
      })
      const config = resolveConfig([layer('file', file), layer('env', env), layer('flags', flag)])
      assert.equal(config.api.port, flag ?? env ?? file ?? DEFAULT_API_PORT)
    }),
    { numRuns: 200 },
  )
})

test('an explicit config file (--config or RPIB_CONFIG) must exist; the default one is optional', async () => {
  await withHome(async (home) => {
    await assert.rejects(loadConfig({ home, env: {}, configFile: join(home, 'nope.json') }), (err: Error) => {
      assert.ok(err instanceof ConfigError)
      assert.match(err.message, /nope\.json does not exist/)
      return true
    })
    await assert.rejects(
      loadConfig({ home, env: { RPIB_CONFIG: join(home, 'missing.json') } }),
      /missing\.json does not exist/,
    )
    const other = join(home, 'other.json')
    await writeFile(
      other,
      JSON.stringify({ network: 'testnet', bitcoin: { backend: 'esplora', url: 'http://127.0.0.1:3002' } }),
    )
    const { config, configFile } = await loadConfig({ home, env: { RPIB_CONFIG: other } })
    assert.equal(configFile, other)
    assert.equal(config.bitcoin.network, 'testnet')
  })
})

test('bad config errors are one line naming the key and where the value came from', async () => {
  await withHome(async (home) => {
    const file = join(home, 'config.json')
    const expectError = async (
      env: Record<string, string>,
      pattern: RegExp,
      flags?: ConfigSource,
    ): Promise<void> => {
      await assert.rejects(loadConfig({ home, env, flags }), (err: Error) => {
        assert.ok(err instanceof ConfigError, String(err))
        assert.equal(err.code, 'ERR_CONFIG')
        assert.match(err.message, pattern)
        assert.ok(!err.message.includes('\n'), 'one line')
        return true
      })
    }
    await writeFile(file, JSON.stringify({ api: { prot: 1 } }))
    await expectError(
      {},
      /^invalid config: api\.prot \(from file .*config\.json\): is not a known config key/,
    )
    await writeFile(file, JSON.stringify({ p2p: { listn: ['/ip4/127.0.0.1/tcp/0'] } }))
    await expectError({}, /p2p\.listn \(from file .*\): is not a known config key/)
    await writeFile(file, JSON.stringify({ api: { host: '0.0.0.0' } }))
    await expectError({}, /api\.host \(from file .*\):/)
    await writeFile(file, '{ "network": ')
    await expectError({}, /config\.json is not valid JSON/)
    await writeFile(file, '[1, 2]')
    await expectError({}, /must hold a JSON object/)
    await writeFile(file, '{}')
    await expectError({ RPIB_API_PORT: 'eighty' }, /api\.port \(from env RPIB_API_PORT\): /)
    await expectError({ RPIB_PROVIDER: 'maybe' }, /roles\.provider \(from env RPIB_PROVIDER\)/)
    await expectError({ RPIB_NETWORK: 'Main Net' }, /network \(from env RPIB_NETWORK\)/)
    await expectError({}, /api\.port \(from flag --api-port\): .*65535/, flagsLayer({ apiPort: '70000' }))
    await expectError({}, /network \(from flag --network\)/, flagsLayer({ network: 'bogus' }))
    await expectError(
      {},
      /provider\.secondsPerHour \(from flag --time-unit\)/,
      flagsLayer({ timeUnit: 'soon' }),
    )
    await expectError(
      {},
      /provider\.secondsPerHour \(from flag --time-unit\): a fast lease clock is only for regtest/,
      flagsLayer({
        timeUnit: '5',
        network: 'testnet',
        bitcoinBackend: 'esplora',
        bitcoinUrl: 'http://127.0.0.1:1',
      }),
    )
  })
})

test('cross-field rules: chains must match the market and remote backends need a URL', () => {
  const bad = (layer: Record<string, unknown>, pattern: RegExp): void =>
    assert.throws(() => resolveConfig([{ label: 'file x', layer }]), pattern)
  bad({ network: 'mainnet' }, /bitcoin\.backend: devchain only runs regtest/)
  bad({ bitcoin: { backend: 'esplora' } }, /bitcoin\.url: is required when bitcoin\.backend is esplora/)
  bad(
    { network: 'regtest', bitcoin: { backend: 'core', url: 'http://127.0.0.1:18443', network: 'mainnet' } },
    /a regtest market cannot pay on bitcoin mainnet/,
  )
  bad({ bitcoin: { backend: 'esplora', url: 'ftp://x' } }, /bitcoin\.url/)
  bad({ bitcoin: { cookieFile: '/x/.cookie' } }, /bitcoin\.cookieFile.*only applies to backend core/)
  const main = resolveConfig([
    {
      label: 'f',
      layer: { network: 'mainnet', bitcoin: { backend: 'esplora', url: 'https://blockstream.info/api' } },
    },
  ])
  assert.equal(main.bitcoin.network, 'mainnet')
})

test('market.replicate auto keeps only its own listing on a provider-only node', () => {
  const replicate = (roles: Record<string, boolean>, replicateSetting?: string): string =>
    resolveConfig([
      {
        label: 'f',
        layer: { roles, ...(replicateSetting != null ? { market: { replicate: replicateSetting } } : {}) },
      },
    ]).market.replicate
  assert.equal(replicate({ provider: true }), 'own')
  assert.equal(replicate({ provider: true, relay: true }), 'all')
  assert.equal(replicate({}), 'all')
  assert.equal(replicate({ provider: true }, 'all'), 'all')
})

test('rpib config show/validate/schema work from the command line', async () => {
  await withHome(async (home) => {
    await writeFile(
      join(home, 'config.json'),
      JSON.stringify({ api: { port: 1111 }, log: { level: 'warn' } }),
    )
    const show = await runCli(
      ['--home', home, '--json', 'config', 'show', '--api-port', '3333', '--provider'],
      { RPIB_LOG_LEVEL: 'error' },
    )
    assert.equal(show.code, 0, show.stderr)
    const shown = JSON.parse(show.stdout) as {
      configFile: string
      config: { api: { port: number }; log: { level: string }; roles: { provider: boolean } }
    }
    assert.equal(shown.configFile, join(home, 'config.json'))
    assert.equal(shown.config.api.port, 3333)
    assert.equal(shown.config.log.level, 'error')
    assert.equal(shown.config.roles.provider, true)

    const good = join(home, 'good.json')
    await writeFile(good, JSON.stringify({ network: 'sandbox-test1', roles: { provider: true } }))
    const ok = await runCli(['config', 'validate', good])
    assert.equal(ok.code, 0, ok.stderr)
    assert.equal(ok.stdout.trim(), `${good}: valid`)

    const badFile = join(home, 'bad.json')
    await writeFile(badFile, JSON.stringify({ presence: { intervalSeconds: 1 }, roles: { provder: true } }))
    const bad = await runCli(['config', 'validate', badFile])
    assert.equal(bad.code, 1)
    assert.match(bad.stderr, /^rpib: invalid config: /)
    assert.match(bad.stderr, /presence\.intervalSeconds/)
    assert.match(bad.stderr, /roles\.provder .*is not a known config key/)
    assert.equal(bad.stderr.trim().split('\n').length, 1)
    const schema = await runCli(['config', 'schema'])
    assert.equal(schema.code, 0)
    const s = JSON.parse(schema.stdout) as {
      properties: Record<string, unknown>
      additionalProperties: boolean
    }
    for (const key of ['network', 'roles', 'api', 'p2p', 'bitcoin', 'presence', 'market', 'log'])
      assert.ok(key in s.properties, key)
    assert.equal(s.additionalProperties, false)
  })
})
