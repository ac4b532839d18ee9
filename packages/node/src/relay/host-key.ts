import { join } from 'node:path'
import ssh2 from 'ssh2'
import { RpibError } from '../errors.js'
import { readIfExists, writePrivateFile } from '../config/paths.js'

export const RELAY_HOST_KEY_FILE = join('relay', 'ssh_host_ed25519_key')

/** Loads the relay's SSH host key from the data directory, creating an Ed25519 key on first use. */
export async function loadOrCreateRelayHostKey(home: string): Promise<string> {
  const path = join(home, RELAY_HOST_KEY_FILE)
  const existing = await readIfExists(path)
  if (existing != null) {
    const text = existing.toString('utf8')
    if (ssh2.utils.parseKey(text) instanceof Error) {
      throw new RpibError(
        'ERR_RELAY_HOST_KEY',
        `relay host key ${path} is unreadable; move it away to create a new one`,
      )
    }
    return text
  }
  const pair = ssh2.utils.generateKeyPairSync('ed25519')
  await writePrivateFile(path, pair.private)
  return pair.private
}
