import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runCli } from './helpers/cli.js'

test('rpib --version prints the package version', async () => {
  const r = await runCli(['--version'])
  assert.equal(r.code, 0)
  assert.match(r.stdout.trim(), /^\d+\.\d+\.\d+$/)
})

test('rpib --help lists the commands', async () => {
  const r = await runCli(['--help'])
  assert.equal(r.code, 0)
  assert.match(r.stdout, /Usage: rpib/)
  assert.match(r.stdout, /\bid\b/)
})

test('rpib id creates a 0600 identity on first run and shows the same peer id afterwards', async () => {
  const home = await mkdtemp(join(tmpdir(), 'rpib-cli-'))
  try {
    const first = await runCli(['id', '--json'], { RPIB_HOME: home })
    assert.equal(first.code, 0, first.stderr)
    const a = JSON.parse(first.stdout) as { peerId: string; created: boolean; path: string }
    assert.equal(a.created, true)
    assert.match(a.peerId, /^12D3KooW/)
    assert.equal((await stat(a.path)).mode & 0o777, 0o600)
    assert.equal((await stat(home)).mode & 0o077, 0)
    const second = await runCli(['--json', 'id'], { RPIB_HOME: home })
    const b = JSON.parse(second.stdout) as { peerId: string; created: boolean }
    assert.equal(b.peerId, a.peerId)
    assert.equal(b.created, false)
    const human = await runCli(['id'], { RPIB_HOME: home })
    assert.equal(human.stdout.trim(), a.peerId)
  } finally {
    await rm(home, { recursive: true, force: true })
  }
})

test('rpib id reports a corrupt identity file in one line, without a stack trace', async () => {
  const home = await mkdtemp(join(tmpdir(), 'rpib-cli-'))
  try {
    const { writeFile } = await import('node:fs/promises')
    await writeFile(join(home, 'identity.key'), 'not a key')
    const r = await runCli(['id'], { RPIB_HOME: home })
    assert.equal(r.code, 1)
    assert.match(r.stderr, /^rpib: identity file .* is unreadable/)
    assert.equal(r.stderr.trim().split('\n').length, 1)
    const j = await runCli(['id', '--json'], { RPIB_HOME: home })
    assert.equal((JSON.parse(j.stdout) as { error: { code: string } }).error.code, 'ERR_IDENTITY_CORRUPT')
  } finally {
    await rm(home, { recursive: true, force: true })
  }
})

test('an unknown command or option exits with status 2 and a hint', async () => {
  const r = await runCli(['no-such-command'])
  assert.equal(r.code, 2)
  assert.match(r.stderr, /unknown command/)
  const o = await runCli(['id', '--no-such-flag'])
  assert.equal(o.code, 2)
})

test('every top-level command is listed in the lazy-loading table, and every listed one exists', async () => {
  const { buildProgram, COMMAND_MODULES } = await import('../src/cli/program.js')
  const registered = (await buildProgram()).commands.map((c) => c.name()).sort()
  const listed = COMMAND_MODULES.flatMap((m) => m.commands).sort()
  assert.deepEqual(registered, listed)
})

test('a command runs with only its own module loaded', async () => {
  const { buildProgram } = await import('../src/cli/program.js')
  const program = await buildProgram(['node', 'rpib', '--home', '/nonexistent', 'id', '--json'])
  assert.deepEqual(
    program.commands.map((c) => c.name()),
    ['id'],
  )
})
