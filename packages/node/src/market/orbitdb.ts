import { createOrbitDB, type OrbitDB } from '@orbitdb/core'
import type { HeliaNode } from '../p2p/helia.js'

export interface CreateMarketOrbitDBOptions {
  helia: HeliaNode
  directory: string
}

/** OrbitDB 4 over our minimal Helia; its identity keystore lives under `directory`. */
export async function createMarketOrbitDB(options: CreateMarketOrbitDBOptions): Promise<OrbitDB> {
  return createOrbitDB({
    ipfs: options.helia,
    id: options.helia.libp2p.peerId.toString(),
    directory: options.directory,
  })
}
