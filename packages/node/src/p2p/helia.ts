import { bitswap } from '@helia/block-brokers'
import { libp2pRouting } from '@helia/routers'
import { Helia } from '@helia/utils'
import type { Libp2p } from '@libp2p/interface'
import { LevelBlockstore } from 'blockstore-level'
import type { HeliaInit } from '@helia/utils'
import { join } from 'node:path'

export type HeliaNode<T extends Libp2p = Libp2p> = Helia<T>

export interface CreateHeliaNodeOptions<T extends Libp2p> {
  libp2p: T
  /** directory for the block store (OrbitDB entries and manifests) */
  directory: string
  /** shared with libp2p's peer store: opened by the caller, closed by Helia's stop() */
  datastore: HeliaInit['datastore']
}

/**
 * A minimal Helia on top of an existing libp2p node: bitswap as the only block broker and libp2p as
 * the only router, so it never reaches for HTTP gateways (and starts faster, with less memory, than
 * the full `helia` package). Blocks persist in LevelDB under `directory`.
 */
export async function createHeliaNode<T extends Libp2p>(
  options: CreateHeliaNodeOptions<T>,
): Promise<HeliaNode<T>> {
  const blockstore = new LevelBlockstore(join(options.directory, 'blocks'))
  await blockstore.open()
  const helia = new Helia<T>({
    libp2p: options.libp2p,
    blockstore,
    datastore: options.datastore,
    blockBrokers: [bitswap()],
    routers: [libp2pRouting(options.libp2p)],
  })
  await helia.start()
  // Helia stops what is Startable; LevelDB stores only open/close, so close ours on the way out
  const stopHelia = helia.stop.bind(helia)
  helia.stop = async () => {
    await stopHelia()
    await blockstore.close()
  }
  return helia
}
