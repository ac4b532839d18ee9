import { createHash, randomBytes } from 'node:crypto'
import type { Ed25519PrivateKey } from '@libp2p/interface'
import { RpibError } from '../errors.js'

/**
 * SSH encodings of the node's Ed25519 identity. The provider authenticates to jump relays with the
 * same key that is its libp2p peer id, so a relay can check "this connection is peer X" without any
 * extra registration step.
 */

function sshString(data: Uint8Array | string): Buffer {
  const body = typeof data === 'string' ? Buffer.from(data, 'utf8') : Buffer.from(data)
  const len = Buffer.alloc(4)
  len.writeUInt32BE(body.length)
  return Buffer.concat([len, body])
}

/** The SSH wire blob (`string "ssh-ed25519" || string key`) of a raw Ed25519 public key. */
export function ed25519PublicBlob(publicKey: Uint8Array): Buffer {
  return Buffer.concat([sshString('ssh-ed25519'), sshString(publicKey)])
}

/** `ssh-ed25519 AAAA…` line for authorized_keys / known_hosts. */
export function ed25519PublicLine(publicKey: Uint8Array, comment?: string): string {
  const line = `ssh-ed25519 ${ed25519PublicBlob(publicKey).toString('base64')}`
  return comment != null ? `${line} ${comment}` : line
}

/** OpenSSH-style `SHA256:…` fingerprint of a public key wire blob. */
export function fingerprintOfBlob(blob: Uint8Array): string {
  return 'SHA256:' + createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')
}

/** Reads the raw 32-byte key out of an `ssh-ed25519` wire blob, or undefined for other key types. */
export function ed25519FromBlob(blob: Uint8Array): Uint8Array | undefined {
  const buf = Buffer.from(blob)
  if (buf.length < 4) return undefined
  const typeLen = buf.readUInt32BE(0)
  if (4 + typeLen + 4 > buf.length) return undefined
  if (buf.subarray(4, 4 + typeLen).toString('latin1') !== 'ssh-ed25519') return undefined
  const keyLen = buf.readUInt32BE(4 + typeLen)
  const start = 8 + typeLen
  if (keyLen !== 32 || start + keyLen !== buf.length) return undefined
  return new Uint8Array(buf.subarray(start, start + keyLen))
}

/**
 * Parses a public key line (`ssh-ed25519 AAAA… [comment]`) into its wire blob.
 * Throws a typed error for anything else.
 */
export function parsePublicKeyLine(line: string): Buffer {
  const parts = line.trim().split(/\s+/)
  if (parts.length < 2 || !/^[a-z0-9@.-]+$/.test(parts[0]!)) {
    throw new RpibError('ERR_SSH_PUBLIC_KEY', 'expected an SSH public key like "ssh-ed25519 AAAA…"')
  }
  const blob = Buffer.from(parts[1]!, 'base64')
  const typeLen = blob.length >= 4 ? blob.readUInt32BE(0) : -1
  if (typeLen < 0 || blob.subarray(4, 4 + typeLen).toString('latin1') !== parts[0]) {
    throw new RpibError('ERR_SSH_PUBLIC_KEY', `SSH public key of type ${parts[0]} has a corrupt body`)
  }
  return blob
}

/**
 * The node identity as an unencrypted OpenSSH private key (`-----BEGIN OPENSSH PRIVATE KEY-----`),
 * readable by ssh2 and by OpenSSH. Keep it in memory or in a 0600 file: it IS the node identity.
 */
export function opensshPrivateKeyFromIdentity(privateKey: Ed25519PrivateKey, comment = 'rpib'): string {
  const raw = privateKey.raw // 64 bytes: seed || public key
  const pub = privateKey.publicKey.raw
  if (raw.length !== 64 || pub.length !== 32) {
    throw new RpibError('ERR_IDENTITY_TYPE', 'the node identity is not a well-formed Ed25519 key')
  }
  const check = randomBytes(4)
  let priv = Buffer.concat([
    check,
    check,
    sshString('ssh-ed25519'),
    sshString(pub),
    sshString(raw),
    sshString(comment),
  ])
  const pad: number[] = []
  for (let i = 1; (priv.length + pad.length) % 8 !== 0; i++) pad.push(i)
  priv = Buffer.concat([priv, Buffer.from(pad)])
  const nkeys = Buffer.alloc(4)
  nkeys.writeUInt32BE(1)
  const body = Buffer.concat([
    Buffer.from('openssh-key-v1\0', 'latin1'),
    sshString('none'),
    sshString('none'),
    sshString(''),
    nkeys,
    sshString(ed25519PublicBlob(pub)),
    sshString(priv),
  ])
  const b64 = body.toString('base64').replace(/(.{70})/g, '$1\n')
  return `-----BEGIN OPENSSH PRIVATE KEY-----\n${b64.replace(/\n$/, '')}\n-----END OPENSSH PRIVATE KEY-----\n`
}
