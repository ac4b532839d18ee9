import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import fc from 'fast-check'
import ssh2 from 'ssh2'
import { parseTunnelName, tunnelName, tunnelNameFromHost, ownerLabel } from '../../src/relay/names.js'
import {
  ed25519FromBlob,
  ed25519PublicBlob,
  ed25519PublicLine,
  fingerprintOfBlob,
  opensshPrivateKeyFromIdentity,
  parsePublicKeyLine,
} from '../../src/relay/ssh-keys.js'
import { parseHostKeySpec } from '../../src/tunnel/openssh.js'
import { relayLimits } from '../../src/relay/limits.js'
import { newIdentity, tempDir } from './fixtures.js'

describe('tunnel names bound to provider keys', () => {
  it('round-trips any valid label and key, case-insensitively', () => {
    fc.assert(
      fc.property(
        fc.stringMatching(/^[a-z0-9](?:[a-z0-9-]{0,10}[a-z0-9])?$/),
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        (label, key) => {
          const name = tunnelName(label, key)
          assert.deepEqual(parseTunnelName(name.toUpperCase()), { label, owner: ownerLabel(key) })
          assert.equal(tunnelNameFromHost(`${name.replace(/\.rpib$/, '')}.relay.example.org:8080`), name)
          assert.ok(name.split('.').every((part) => part.length <= 63))
        },
      ),
    )
  })

  it('rejects malformed names and labels', () => {
    const key = new Uint8Array(32)
    for (const bad of ['', '-x', 'x-', 'UPPER', 'a_b', 'a'.repeat(41)]) {
      assert.throws(() => tunnelName(bad, key), { code: 'ERR_TUNNEL_NAME' })
    }
    for (const bad of [
      'x.rpib',
      `x.${'a'.repeat(51)}.rpib`,
      `x.${'1'.repeat(52)}.rpib`,
      `x.${'a'.repeat(52)}.com`,
      `a.b.${'a'.repeat(52)}.rpib`,
    ]) {
      assert.equal(parseTunnelName(bad), undefined, bad)
    }
    assert.equal(tunnelNameFromHost('example.org'), undefined)
    assert.throws(() => tunnelName('x', new Uint8Array(31)), { code: 'ERR_TUNNEL_KEY' })
  })
})

describe('SSH encodings of the node identity', () => {
  it('builds an OpenSSH private key that ssh2 and ssh-keygen both read, with the same public key', async () => {
    const id = await newIdentity()
    const pem = opensshPrivateKeyFromIdentity(id)
    const parsed = ssh2.utils.parseKey(pem)
    assert.ok(!(parsed instanceof Error))
    assert.deepEqual(parsed.getPublicSSH(), ed25519PublicBlob(id.publicKey.raw))
    const sig = parsed.sign(Buffer.from('hello'))
    assert.equal(parsed.verify(Buffer.from('hello'), sig), true)

    const tmp = await tempDir()
    try {
      const file = join(tmp.dir, 'id')
      await writeFile(file, pem, { mode: 0o600 })
      const pub = execFileSync('ssh-keygen', ['-y', '-f', file], { encoding: 'utf8' }).trim()
      assert.equal(pub.split(' ').slice(0, 2).join(' '), ed25519PublicLine(id.publicKey.raw))
      const fp = execFileSync('ssh-keygen', ['-l', '-f', file], { encoding: 'utf8' }).split(' ')[1]
      assert.equal(fp, fingerprintOfBlob(ed25519PublicBlob(id.publicKey.raw)))
    } finally {
      await tmp.cleanup()
    }
  })

  it('parses key blobs and lines strictly', () => {
    const key = new Uint8Array(32).fill(7)
    assert.deepEqual(ed25519FromBlob(ed25519PublicBlob(key)), key)
    assert.equal(ed25519FromBlob(Buffer.from([0, 0, 0, 1])), undefined)
    assert.equal(ed25519FromBlob(Buffer.concat([ed25519PublicBlob(key), Buffer.from([0])])), undefined)
    assert.throws(() => parsePublicKeyLine('garbage'), { code: 'ERR_SSH_PUBLIC_KEY' })
    assert.throws(() => parsePublicKeyLine('ssh-rsa ' + ed25519PublicBlob(key).toString('base64')), {
      code: 'ERR_SSH_PUBLIC_KEY',
    })
    const line = ed25519PublicLine(key)
    assert.deepEqual(parseHostKeySpec(line), {
      kind: 'key',
      line,
      fingerprint: fingerprintOfBlob(ed25519PublicBlob(key)),
    })
    assert.deepEqual(parseHostKeySpec('SHA256:' + 'B'.repeat(43)), {
      kind: 'fingerprint',
      fingerprint: 'SHA256:' + 'B'.repeat(43),
    })
  })

  it('validates relay limits', () => {
    assert.equal(relayLimits().maxTunnelsPerProvider, 16)
    assert.ok(relayLimits().circuitDataLimitBytes > 1 << 17)
    assert.throws(() => relayLimits({ maxConnectionsPerSource: 0 }))
    assert.throws(() => relayLimits({ circuitDataLimitBytes: 1000 }))
  })
})
