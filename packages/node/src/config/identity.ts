import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { Ed25519PrivateKey, PeerId } from '@libp2p/interface'
import { join } from 'node:path'
import { RpibError } from '../errors.js'
import { readIfExists, writePrivateFile } from './paths.js'

export const IDENTITY_FILE = 'identity.key'

export interface NodeIdentity {
  privateKey: Ed25519PrivateKey
  peerId: PeerId
  /** true when this call generated the key (first run) */
  created: boolean
  path: string
}

/**
 * Loads the node's Ed25519 identity from `<dataDir>/identity.key`, creating it (mode 0600) on
 * first use. The same key signs protocol records and is the libp2p peer id.
 */
export async function loadOrCreateIdentity(dir: string): Promise<NodeIdentity> {
  const path = join(dir, IDENTITY_FILE)
  const existing = await readIfExists(path)
  if (existing != null) {
    let key
    try {
      key = privateKeyFromProtobuf(existing)
    } catch (err) {
      throw new RpibError(
        'ERR_IDENTITY_CORRUPT',
        `identity file ${path} is unreadable; restore it from a backup or move it away to create a new identity`,
        { cause: err },
      )
    }
    if (key.type !== 'Ed25519') {
      throw new RpibError(
        'ERR_IDENTITY_TYPE',
        `identity file ${path} holds a ${key.type} key; RPi Broker needs Ed25519`,
      )
    }
    return { privateKey: key, peerId: peerIdFromPrivateKey(key), created: false, path }
  }
  const key = await generateKeyPair('Ed25519')
  await writePrivateFile(path, privateKeyToProtobuf(key))
  return { privateKey: key, peerId: peerIdFromPrivateKey(key), created: true, path }
}
