import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import ssh2, { type PublicKeyAuthContext } from 'ssh2'
import { AuthRateLimiter, HostKeyError, loadOrCreateHostKey, matchPublicKey } from '../../src/ssh/index.js'
import { makeRenterKey, runProcess } from '../containers/harness.js'

const { utils } = ssh2

describe('SSH host key and key matching', () => {
  let dir: string
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'rpib-hostkey-'))
  })
  after(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  it('creates a persistent 0600 Ed25519 host key whose fingerprint matches ssh-keygen -lf', async () => {
    const path = join(dir, 'keys', 'ssh_host_ed25519_key')
    const created = await loadOrCreateHostKey(path)
    assert.equal(created.created, true)
    assert.equal((await stat(path)).mode & 0o777, 0o600)
    const loaded = await loadOrCreateHostKey(path)
    assert.equal(loaded.created, false)
    assert.equal(loaded.fingerprint, created.fingerprint)
    const keygen = await runProcess('ssh-keygen', ['-lf', path])
    assert.equal(keygen.code, 0, keygen.stderr)
    assert.equal(keygen.stdout.split(' ')[1], created.fingerprint)
    assert.match(created.publicKey, /^ssh-ed25519 AAAA/)
  })

  it('refuses a host key file that is not an Ed25519 private key', async () => {
    const path = join(dir, 'garbage_key')
    await writeFile(path, 'not a key\n')
    await assert.rejects(loadOrCreateHostKey(path), HostKeyError)
  })

  it('accepts a lease key with a valid signature and refuses a forged one', async () => {
    const renter = await makeRenterKey(dir, 'renter')
    const other = await makeRenterKey(dir, 'other')
    const privateKey = utils.parseKey(await readFile(renter.path))
    assert.ok(!(privateKey instanceof Error) && !Array.isArray(privateKey))
    const blob = randomBytes(64)
    const ctx = (signature: Buffer | undefined): PublicKeyAuthContext =>
      ({
        method: 'publickey',
        username: 'lease',
        key: { algo: 'ssh-ed25519', data: privateKey.getPublicSSH() },
        signature,
        blob: signature != null ? blob : undefined,
        hashAlgo: undefined,
      }) as unknown as PublicKeyAuthContext
    assert.ok(matchPublicKey(ctx(undefined), [renter.publicKey]), 'the probe without signature is accepted')
    assert.ok(matchPublicKey(ctx(privateKey.sign(blob)), [renter.publicKey]), 'a valid signature is accepted')
    assert.equal(
      matchPublicKey(ctx(randomBytes(64)), [renter.publicKey]),
      undefined,
      'a forged signature fails',
    )
    assert.equal(
      matchPublicKey(ctx(privateKey.sign(blob)), [other.publicKey]),
      undefined,
      'another key fails',
    )
    assert.equal(matchPublicKey(ctx(undefined), ['garbage', '']), undefined, 'unparsable keys are ignored')
  })

  it('rate-limits failures per source within a window', () => {
    let now = 0
    const limiter = new AuthRateLimiter({ maxFailures: 2, windowMs: 1_000, now: () => now })
    limiter.recordFailure('a')
    assert.equal(limiter.blocked('a'), false)
    limiter.recordFailure('a')
    assert.equal(limiter.blocked('a'), true)
    assert.equal(limiter.blocked('b'), false, 'other sources are not affected')
    now = 1_001
    assert.equal(limiter.blocked('a'), false, 'the window passes')
  })
})
