/**
 * A market node in its own OS process, driven by JSON lines on stdin/stdout (see
 * test/lib/node-process.ts for the parent side). Test code, not a product: with `--hostile` it
 * opens the listings store with an access controller that lets anything through, so tests can
 * write forged entries straight into OrbitDB.
 *
 *   argv: <dataDir> <networkId> <optionsJson> [--hostile]
 *   stdout: {"event":"ready",...} then one {"id","ok","result"|"error"} line per request
 */
import { Documents, type AccessControllerFactory, type DocumentsDatabase, type OrbitDB } from '@orbitdb/core'
import { listingsDbName, presenceTopic } from '@rpib/protocol'
import { createInterface } from 'node:readline'
import { z } from 'zod'
import { RpibError } from '../../src/errors.js'
import { listingsAccessAddress, LISTINGS_ACCESS_TYPE } from '../../src/market/listings-access.js'
import { createMarketNode, type ListingInput, type MarketNode } from '../../src/market/market-node.js'
import { MarketQuerySchema } from '../../src/market/market-index.js'

const RequestSchema = z.object({
  id: z.int(),
  cmd: z.string(),
  args: z.record(z.string(), z.unknown()).default({}),
})
const OptionsSchema = z.object({
  p2p: z.record(z.string(), z.unknown()).default({}),
  market: z.record(z.string(), z.unknown()).default({}),
})

const [dataDir, networkId, optionsJson] = process.argv.slice(2)
const hostile = process.argv.includes('--hostile')
if (dataDir == null || networkId == null || optionsJson == null) {
  process.stderr.write('usage: node-child <dataDir> <networkId> <optionsJson> [--hostile]\n')
  process.exit(2)
}

function send(message: unknown): void {
  process.stdout.write(JSON.stringify(message) + '\n')
}

const options = OptionsSchema.parse(JSON.parse(optionsJson))
const startedAt = performance.now()
const node: MarketNode = await createMarketNode({
  dataDir,
  networkId,
  p2p: options.p2p,
  market: options.market,
})
const readyMs = performance.now() - startedAt

/** Hostile mode: the same store address, opened with an access controller that allows anything. */
let rawDb: DocumentsDatabase | undefined
async function openRawListings(orbitdb: OrbitDB): Promise<DocumentsDatabase> {
  if (rawDb != null) return rawDb
  const address = await listingsAccessAddress(networkId!)
  const permissive: AccessControllerFactory = async () => ({
    type: LISTINGS_ACCESS_TYPE,
    address,
    write: ['*'],
    canAppend: async () => true,
  })
  const open = async (): Promise<DocumentsDatabase> =>
    (await orbitdb.open(listingsDbName(networkId!), {
      Database: Documents({ indexBy: '_id' }),
      AccessController: permissive,
    })) as DocumentsDatabase
  // the same address is already open with the honest controller: close that handle, then reopen
  await (await open()).close()
  rawDb = await open()
  return rawDb
}

const arrivals = new Map<string, Map<string, number>>()
node.libp2p.services.pubsub.addEventListener('message', (event) => {
  const seen = arrivals.get(event.detail.topic)
  if (seen != null) seen.set(new TextDecoder().decode(event.detail.data), Date.now())
})

// when each listing key last moved forward, so latency is measured at arrival, not at request time
const arrivedAt = new Map<string, number>()
node.watchListings((key) => arrivedAt.set(key, Date.now()))

const b64 = (s: unknown): Uint8Array => Uint8Array.from(Buffer.from(z.string().parse(s), 'base64'))

async function handle(cmd: string, args: Record<string, unknown>): Promise<unknown> {
  switch (cmd) {
    case 'info':
      return {
        peerId: node.peerId,
        addresses: node.addresses(),
        readyMs,
        rssBytes: process.memoryUsage().rss,
      }
    case 'dial':
      await node.dial(z.string().parse(args.address))
      return null
    case 'publish': {
      const listing = await node.publishListing(args.listing as ListingInput)
      return {
        key: `${listing.signer}/${listing.body.deviceId}`,
        version: listing.body.version,
        record: listing,
      }
    }
    case 'unlist': {
      const listing = await node.unlist(z.string().parse(args.deviceId))
      return { version: listing.body.version, record: listing }
    }
    case 'query':
      return node.query(MarketQuerySchema.parse(args.query ?? {}))
    case 'show':
      return node.show(z.string().parse(args.key)) ?? null
    case 'latest':
      return node.index.latest(z.string().parse(args.key)) ?? null
    case 'stats':
      return { ...node.stats(), rssBytes: process.memoryUsage().rss }
    case 'awaitListing': {
      // resolves with the local time at which the key reached at least `version`
      const key = z.string().parse(args.key)
      const version = z.int().parse(args.version)
      const timeoutMs = z.int().default(20_000).parse(args.timeoutMs)
      const reached = (): boolean => (node.index.latest(key)?.body.version ?? 0) >= version
      if (reached()) return { at: arrivedAt.get(key) ?? Date.now() }
      return await new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          unwatch()
          reject(new RpibError('ERR_TIMEOUT', `listing ${key} v${version} not seen within ${timeoutMs} ms`))
        }, timeoutMs)
        const unwatch = node.watchListings(() => {
          if (!reached()) return
          clearTimeout(timer)
          unwatch()
          resolve({ at: arrivedAt.get(key) ?? Date.now() })
        })
      })
    }
    case 'benchSubscribe': {
      // raw gossipsub baseline for the benchmark: remember when each message id arrived
      const topic = z.string().parse(args.topic)
      arrivals.set(topic, new Map())
      node.libp2p.services.pubsub.subscribe(topic)
      return null
    }
    case 'benchPublish': {
      const topic = z.string().parse(args.topic)
      await node.libp2p.services.pubsub.publish(topic, new TextEncoder().encode(z.string().parse(args.id)))
      return { at: Date.now() }
    }
    case 'benchArrivals':
      return Object.fromEntries(arrivals.get(z.string().parse(args.topic)) ?? [])
    case 'rawPut': {
      if (!hostile) throw new RpibError('ERR_NOT_HOSTILE', 'rawPut needs --hostile')
      const db = await openRawListings(node.orbitdb)
      await db.put({ _id: z.string().parse(args.key), record: b64(args.record) })
      return null
    }
    case 'rawDel': {
      if (!hostile) throw new RpibError('ERR_NOT_HOSTILE', 'rawDel needs --hostile')
      const db = await openRawListings(node.orbitdb)
      await db.del(z.string().parse(args.key))
      return null
    }
    case 'rawPublishPresence': {
      if (!hostile) throw new RpibError('ERR_NOT_HOSTILE', 'rawPublishPresence needs --hostile')
      await node.libp2p.services.pubsub.publish(presenceTopic(networkId!), b64(args.data))
      return null
    }
    default:
      throw new RpibError('ERR_UNKNOWN_COMMAND', `unknown command ${cmd}`)
  }
}

let stopping: Promise<never> | undefined
function shutdown(code: number): Promise<never> {
  stopping ??= (async () => {
    await rawDb?.close().catch(() => {})
    await node.stop()
    // exit explicitly: the parent may keep our stdin open
    process.exit(code)
  })()
  return stopping
}

send({ event: 'ready', peerId: node.peerId, addresses: node.addresses(), readyMs })

const lines = createInterface({ input: process.stdin })
lines.on('line', (line) => {
  let request: z.infer<typeof RequestSchema>
  try {
    request = RequestSchema.parse(JSON.parse(line))
  } catch (err) {
    send({ id: -1, ok: false, error: { code: 'ERR_BAD_REQUEST', message: (err as Error).message } })
    return
  }
  if (request.cmd === 'stop') {
    send({ id: request.id, ok: true, result: null })
    void shutdown(0)
    return
  }
  handle(request.cmd, request.args).then(
    (result) => send({ id: request.id, ok: true, result }),
    (err: unknown) =>
      send({
        id: request.id,
        ok: false,
        error: {
          code: err instanceof RpibError ? err.code : 'ERR_INTERNAL',
          message: err instanceof Error ? err.message : String(err),
        },
      }),
  )
})
// the parent going away (stdin closed) stops the node cleanly
lines.on('close', () => void shutdown(0))
process.on('SIGTERM', () => void shutdown(0))
