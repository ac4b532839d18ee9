import { createHash } from 'node:crypto'

/** OpenSSH `SHA256:…` fingerprint of an `ssh-ed25519 AAAA…` line. */
export function fingerprintFromLine(line: string): string {
  const blob = Buffer.from(line.trim().split(/\s+/)[1]!, 'base64')
  return 'SHA256:' + createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')
}
