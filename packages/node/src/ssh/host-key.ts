import { createHash } from 'node:crypto'
import { dirname } from 'node:path'
import ssh2 from 'ssh2'
import { ensurePrivateDir, readIfExists, writePrivateFile } from '../config/paths.js'
import { HostKeyError } from './errors.js'

const { utils } = ssh2

export interface HostKey {
  /** OpenSSH-format private key, as ssh2's Server wants it. */
  privateKey: Buffer
  /** `ssh-ed25519 AAAA…` (what goes into a renter's known_hosts). */
  publicKey: string
  /** `SHA256:…`, the same string `ssh-keygen -lf` prints; listings carry it so renters can pin it. */
  fingerprint: string
}

/** SHA-256 fingerprint of an SSH public key blob, in OpenSSH's format (base64 without padding). */
export function sshFingerprint(publicKeyBlob: Uint8Array): string {
  return `SHA256:${createHash('sha256').update(publicKeyBlob).digest('base64').replace(/=+$/, '')}`
}

function describe(privateKey: Buffer, path: string): HostKey {
  const parsed = utils.parseKey(privateKey)
  if (
    parsed instanceof Error ||
    Array.isArray(parsed) ||
    parsed.type !== 'ssh-ed25519' ||
    !parsed.isPrivateKey()
  ) {
    throw new HostKeyError(`${path} is not an Ed25519 SSH private key; move it away to create a new one`)
  }
  const blob = parsed.getPublicSSH()
  return {
    privateKey,
    publicKey: `ssh-ed25519 ${blob.toString('base64')}`,
    fingerprint: sshFingerprint(blob),
  }
}

/** Loads the persistent Ed25519 host key, creating it (0600) on first use. */
export async function loadOrCreateHostKey(path: string): Promise<HostKey & { created: boolean }> {
  const existing = await readIfExists(path)
  if (existing != null) return { ...describe(existing, path), created: false }
  await ensurePrivateDir(dirname(path))
  const pair = utils.generateKeyPairSync('ed25519', { comment: 'rpib-host' })
  const privateKey = Buffer.from(pair.private)
  await writePrivateFile(path, privateKey)
  return { ...describe(privateKey, path), created: true }
}
