import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { runCli } from '../helpers/cli.js'
import { tempDir } from './fixtures.js'

describe('relay CLI commands reject bad arguments with one clear line', () => {
  const cases: { args: string[]; message: RegExp }[] = [
    {
      args: ['tunnel', '--relay', '10.0.0.1', '--forward', 'a:22=127.0.0.1:22'],
      message: /relay "10.0.0.1" must look like host:port/,
    },
    { args: ['tunnel', '--relay', '10.0.0.1:2222'], message: /--relay needs at least one --forward/ },
    {
      args: ['tunnel', '--relay', '10.0.0.1:2222=md5:xx', '--forward', 'a:22=127.0.0.1:22'],
      message: /must be an OpenSSH SHA256/,
    },
    {
      args: ['tunnel', '--relay', '10.0.0.1:2222', '--forward', 'A_B:22=x'],
      message: /--forward "A_B:22=x" must look like/,
    },
    { args: ['tunnel', '--p2p-relay', '/ip4/1.2.3.4/tcp/1'], message: /--p2p-relay needs --ssh-target/ },
    { args: ['relay', '--ssh-port', 'many'], message: /--ssh-port must be a whole number/ },
    {
      args: [
        'ssh-config',
        '--alias',
        'Bad Alias',
        '--host-key',
        'x',
        '--user',
        'u',
        '--peer',
        '/ip4/1.2.3.4',
      ],
      message: /host alias "Bad Alias"/,
    },
    {
      args: ['ssh-config', '--alias', 'pi', '--host-key', 'x', '--user', 'u'],
      message: /give exactly one of --peer or --jump/,
    },
    {
      args: ['ssh', '--peer', '/ip4/1.2.3.4/tcp/1', '--host-key', 'x', '--user', 'u'],
      message: /has no \/p2p\/<peer id>/,
    },
  ]
  for (const c of cases) {
    it(`rpib ${c.args[0]!} → ${c.message.source}`, async () => {
      const tmp = await tempDir()
      try {
        const r = await runCli(['--home', tmp.dir, ...c.args])
        assert.notEqual(r.code, 0)
        assert.match(r.stderr, c.message)
        assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace')
      } finally {
        await tmp.cleanup()
      }
    })
  }
})
