/**
 * The README's first command: `npm start` runs scripts/sandbox.js. This starts it as a user would (a
 * separate process, real daemons, real Docker, real OpenSSH), follows the commands it prints — market
 * list, rent, ssh — and checks that Ctrl-C stops everything and leaves no lease container or network.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile, spawn, spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'

// compiled to test/dist/sandbox
const REPO = resolve(import.meta.dirname, '../../..')
const CLI = join(REPO, 'packages/node/dist/src/cli/main.js')
const dockerOk = spawnSync('docker', ['info'], { stdio: 'ignore' }).status === 0
if (!dockerOk && process.env.CI === 'true') throw new Error('the sandbox test needs a Docker engine in CI')

interface Run {
  code: number | null
  stdout: string
  stderr: string
}

function rpib(home: string, args: string[], timeoutMs = 120_000): Promise<Run> {
  return new Promise((res) => {
    execFile(
      process.execPath,
      [CLI, '--home', home, ...args],
      { timeout: timeoutMs, env: { ...process.env, RPIB_WALLET_PASSPHRASE: 'sandbox-wallet' } },
      (err, stdout, stderr) => {
        const code = err == null ? 0 : typeof err.code === 'number' ? err.code : null
        res({ code, stdout, stderr })
      },
    )
  })
}

function docker(args: string[]): string {
  return spawnSync('docker', args, { encoding: 'utf8' }).stdout.trim()
}

test(
  'npm start: two providers and a renter on loopback; rent, ssh, Ctrl-C cleans up',
  { skip: dockerOk ? false : 'no Docker engine (CI=true makes this a failure)', timeout: 480_000 },
  async () => {
    const dir = await mkdtemp(join(tmpdir(), 'rpib-sandbox-'))
    const name = `sbt${randomBytes(3).toString('hex')}`
    const sandbox = spawn(process.execPath, [join(REPO, 'scripts/sandbox.js')], {
      env: { ...process.env, RPIB_SANDBOX_DIR: dir, RPIB_SANDBOX_NAME: name },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let out = ''
    sandbox.stdout.setEncoding('utf8').on('data', (d: string) => (out += d))
    sandbox.stderr.setEncoding('utf8').on('data', (d: string) => (out += d))
    const exited = new Promise<number | null>((res) => sandbox.once('exit', (code) => res(code)))
    try {
      const ready = await Promise.race([
        new Promise<boolean>((res) => {
          const check = (): void => {
            if (out.includes('Press Ctrl-C')) res(true)
            else if (sandbox.exitCode === null) setTimeout(check, 250)
          }
          check()
        }),
        exited.then(() => false),
        new Promise<boolean>((res) => setTimeout(() => res(false), 300_000).unref()),
      ])
      assert.ok(ready, `the sandbox did not come up:\n${out}`)

      const renter = join(dir, 'renter')
      const listings = [...out.matchAll(/owner [AB]\s+(\S+\/[a-z0-9-]+)\s/g)].map((m) => m[1]!)
      assert.equal(listings.length, 2, out)
      assert.notEqual(listings[0]!.split('/')[0], listings[1]!.split('/')[0], 'two different owners')

      const market = await rpib(renter, ['--json', 'market', 'list'])
      assert.equal(market.code, 0, market.stderr)
      const keys = (JSON.parse(market.stdout) as { entries: { key: string }[] }).entries.map((e) => e.key)
      for (const l of listings) assert.ok(keys.includes(l), `${l} in ${keys.join(', ')}`)

      const key = join(dir, 'id_ed25519')
      assert.equal(spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', key]).status, 0)
      const rent = await rpib(renter, [
        '--json',
        'rent',
        listings[0]!,
        '--hours',
        '2',
        '--ssh-key',
        `${key}.pub`,
        '--wait',
        '120',
      ])
      assert.equal(rent.code, 0, rent.stderr + rent.stdout)
      const rental = JSON.parse(rent.stdout) as { offerId: string; status: string }
      assert.equal(rental.status, 'active')

      const ssh = await rpib(renter, ['ssh', rental.offerId.slice(0, 10), '-i', key, '--', 'echo', 'hello'])
      assert.equal(ssh.code, 0, ssh.stderr)
      assert.equal(ssh.stdout.trim(), 'hello')
      assert.equal(
        docker(['ps', '-q', '--filter', `label=io.rpib.namespace=rpib-${name}-a`]).split('\n').length,
        1,
      )
    } finally {
      if (sandbox.exitCode === null) sandbox.kill('SIGINT')
      const code = await Promise.race([exited, new Promise((res) => setTimeout(() => res('hung'), 60_000))])
      if (code === 'hung') sandbox.kill('SIGKILL')
      const state = await readFile(join(dir, 'renter', 'daemon.json'), 'utf8').catch(() => undefined)
      await rm(dir, { recursive: true, force: true })
      assert.equal(code, 0, `the sandbox stopped with ${String(code)}:\n${out.slice(-3000)}`)
      assert.match(out, /sandbox stopped/)
      assert.equal(state, undefined, 'the renter daemon removed its daemon.json on the way out')
      for (const k of ['a', 'b']) {
        const ns = `rpib-${name}-${k}`
        assert.equal(
          docker(['ps', '-aq', '--filter', `label=io.rpib.namespace=${ns}`]),
          '',
          `containers of ${ns}`,
        )
        assert.equal(docker(['network', 'ls', '-q', '--filter', `name=^${ns}$`]), '', `network ${ns}`)
      }
    }
  },
)
