import { type Command, Option } from 'commander'
import { z } from 'zod'
import { loadConfig } from '../config/config.js'
import { ensurePrivateDir } from '../config/paths.js'
import { RpibError, UsageError } from '../errors.js'
import { createMarketNode, type MarketNode } from '../market/market-node.js'
import type { Listing } from '../market/records.js'
import { marketListingsRoute, type ReputationViewSchema } from '../daemon/market-routes.js'
import { ReputationBook } from '../market/reputation-book.js'
import { connectToDaemon } from './client.js'
import { SORT_FIELDS, type MarketEntry, type MarketQuery } from '../market/market-index.js'
import { parseNetworkId } from '../p2p/network-id.js'
import { emit, globalOptions } from './output.js'

interface SyncOptions {
  network?: string
  bootstrap?: string[]
  listen?: string[]
  wait: string
}

const WaitSchema = z.coerce.number().min(0).max(600)
const IntSchema = z.coerce.number().int().min(0)

function intOption(value: string | undefined, flag: string): number | undefined {
  if (value == null) return undefined
  const parsed = IntSchema.safeParse(value)
  if (!parsed.success) throw new UsageError(`${flag} must be a non-negative integer, got "${value}"`)
  return parsed.data
}

function numberOption(value: string | undefined, flag: string): number | undefined {
  if (value == null) return undefined
  const parsed = z.coerce.number().finite().safeParse(value)
  if (!parsed.success || value.trim() === '') throw new UsageError(`${flag} must be a number, got "${value}"`)
  return parsed.data
}

/** `--sort` values: the index's fields plus the short `cpu` (= cpuScore). */
const SORT_CHOICES = [...SORT_FIELDS, 'cpu'] as const
type ReputationView = z.infer<typeof ReputationViewSchema>

/** A market entry as printed (and as the daemon's API returns it; the daemon verified the listing). */
interface EntryView {
  key: string
  provider: string
  deviceId: string
  online: boolean
  lastSeenAt: number | null
  reputation: number | null
  reputationDetail?: ReputationView | null
  listing: Listing
}
type IndexAnswer = { networkId: string; total: number; entries: EntryView[] }

/**
 * When a daemon runs for this home, `market list|show` asks its index (it holds the replica and hears
 * presence all the time); otherwise it starts a short-lived node on the local replica, syncs with the
 * network for `--wait` seconds and answers from that.
 */
async function askDaemon(
  cmd: Command,
  query: Record<string, string | number | undefined>,
): Promise<IndexAnswer | undefined> {
  let connected
  try {
    connected = await connectToDaemon(globalOptions(cmd).home)
  } catch (err) {
    if (err instanceof RpibError && err.code === 'ERR_NO_DAEMON') return undefined
    throw err
  }
  const q = Object.fromEntries(Object.entries(query).filter(([, v]) => v !== undefined))
  return (await connected.client.call(marketListingsRoute, { query: q as never })) as IndexAnswer
}

async function withMarket<T>(
  cmd: Command,
  opts: SyncOptions,
  body: (node: MarketNode, book: ReputationBook) => T,
): Promise<T> {
  const { home } = globalOptions(cmd)
  const wait = WaitSchema.safeParse(opts.wait)
  if (!wait.success)
    throw new UsageError(`--wait must be a number of seconds between 0 and 600, got "${opts.wait}"`)
  await ensurePrivateDir(home)
  const { config } = await loadConfig({ home })
  const networkId = parseNetworkId(opts.network ?? config.network)
  const p2p = {
    ...config.p2p,
    bootstrap: [...config.p2p.bootstrap, ...(opts.bootstrap ?? [])],
    listen: opts.listen ?? config.p2p.listen,
  }
  let node: MarketNode
  try {
    node = await createMarketNode({ dataDir: home, networkId, p2p })
  } catch (err) {
    if (err instanceof RpibError) throw err
    const message = (err as Error).message
    if (/lock/i.test(message)) {
      throw new RpibError(
        'ERR_MARKET_BUSY',
        `the market replica in ${home} is in use (is the daemon running?); stop it or use another --home`,
        { cause: err },
      )
    }
    throw new RpibError('ERR_MARKET_START', `could not start the market node: ${message}`, { cause: err })
  }
  // reputation from the history this replica holds plus what arrives while syncing
  const book = new ReputationBook({ offers: node.offers, index: node.index })
  try {
    await book.start()
    if (wait.data > 0) await new Promise((resolve) => setTimeout(resolve, wait.data * 1000))
    return body(node, book)
  } finally {
    book.stop()
    await node.stop()
  }
}

function syncOptions(command: Command): Command {
  return command
    .option(
      '--network <id>',
      'market network id (mainnet, testnet, regtest, sandbox-<name>; default from config)',
    )
    .option('--bootstrap <multiaddr...>', 'peers to sync from, in addition to the configured bootstrap list')
    .option('--listen <multiaddr...>', 'addresses to listen on while syncing (default from config)')
    .option('--wait <seconds>', 'how long to sync with the network before answering', '5')
}

function row(entry: EntryView): string[] {
  const body = entry.listing.body
  return [
    entry.key.length > 40 ? `…${entry.key.slice(-39)}` : entry.key,
    body.specs.arch,
    String(body.specs.cpuCores),
    String(body.specs.cpuScore),
    `${body.specs.memoryMb}`,
    `${body.specs.diskFreeMb}`,
    `${body.satsPerHour}`,
    entry.online ? 'yes' : '-',
    entry.reputation == null ? '-' : String(entry.reputation),
  ]
}

function table(entries: EntryView[]): string {
  const header = ['LISTING', 'ARCH', 'CORES', 'CPU', 'MEM MB', 'DISK MB', 'SATS/H', 'ONLINE', 'REP']
  const rows = [header, ...entries.map(row)]
  const widths = header.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)))
  return rows
    .map((r) =>
      r
        .map((cell, i) => cell.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n')
}

function serialise(entry: MarketEntry, book: ReputationBook): EntryView {
  const { provider: _provider, uptime, ...counts } = book.get(entry.provider)
  return {
    key: entry.key,
    provider: entry.provider,
    deviceId: entry.deviceId,
    online: entry.online,
    lastSeenAt: entry.lastSeenAt ?? null,
    reputation: entry.reputation ?? null,
    reputationDetail: { ...counts, uptime: uptime ?? null },
    listing: entry.listing,
  }
}

function reputationLines(r: ReputationView | null | undefined): string[] {
  if (r == null) return ['reputation unknown']
  const uptime = r.uptime == null ? 'not observed long enough' : `${Math.round(r.uptime * 1000) / 10}%`
  return [
    `reputation ${r.score}: ${r.completedLeases} of ${r.leases} leases completed, ${r.failedLeases} failed by the provider`,
    `  refunds ${r.refunds} (${r.refundedSats} sats), failed refunds ${r.failedRefunds} (${r.failedRefundSats} sats unpaid)`,
    `  outages reported by renters ${r.outages} (${r.outageSeconds} s), presence uptime ${uptime}`,
  ]
}

export function registerMarket(program: Command): void {
  const market = program
    .command('market')
    .description('browse the device market (listings replicated over P2P)')

  syncOptions(market.command('list'))
    .description('list devices on the market, cheapest first')
    .option('--arch <arch>', 'only this architecture (arm64, amd64, …)')
    .option('--min-cpus <n>', 'at least this many CPU cores')
    .addOption(new Option('--min-cores <n>', 'same as --min-cpus').hideHelp())
    .option('--min-cpu-score <n>', 'at least this CPU score')
    .option('--min-memory <mb>', 'at least this much memory (MB)')
    .option('--min-disk <mb>', 'at least this much free disk (MB)')
    .option('--max-price <sats>', 'at most this many sats per hour')
    .option('--min-reputation <score>', 'providers with at least this reputation score')
    .option('--online', 'only devices whose presence was seen while syncing')
    .addOption(new Option('--sort <field>', 'sort by').choices(SORT_CHOICES).default('price'))
    .addOption(
      new Option('--order <dir>', 'sort direction (default depends on the field)').choices(['asc', 'desc']),
    )
    .option('--limit <n>', 'show at most this many', '100')
    .action(async (opts: SyncOptions & Record<string, string | boolean | undefined>, cmd: Command) => {
      const query: MarketQuery = {
        arch: opts.arch as string | undefined,
        minCpuCores:
          intOption(opts.minCpus as string | undefined, '--min-cpus') ??
          intOption(opts.minCores as string | undefined, '--min-cores'),
        minCpuScore: intOption(opts.minCpuScore as string | undefined, '--min-cpu-score'),
        minMemoryMb: intOption(opts.minMemory as string | undefined, '--min-memory'),
        minDiskMb: intOption(opts.minDisk as string | undefined, '--min-disk'),
        maxSatsPerHour: intOption(opts.maxPrice as string | undefined, '--max-price'),
        minReputation: numberOption(opts.minReputation as string | undefined, '--min-reputation'),
        // a short-lived node only sees beats sent while it syncs, so offline is not hidden by default
        presence: opts.online === true ? 'online' : 'any',
        sort: (opts.sort === 'cpu' ? 'cpuScore' : opts.sort) as MarketQuery['sort'],
        order: opts.order as MarketQuery['order'],
        limit: intOption(opts.limit as string | undefined, '--limit'),
      }
      const fromDaemon = await askDaemon(cmd, { ...query, presence: opts.online === true ? 'online' : 'any' })
      const result =
        fromDaemon ??
        (await withMarket(cmd, opts, (node, book) => {
          const r = node.query(query)
          return {
            networkId: node.networkId,
            total: r.total,
            entries: r.entries.map((e) => serialise(e, book)),
          }
        }))
      emit(cmd, result, () =>
        result.entries.length === 0
          ? `no listings on ${result.networkId} match${fromDaemon != null ? '' : ` (synced for ${opts.wait} s; try --wait or --bootstrap)`}`
          : `${table(result.entries)}\n(${result.entries.length} of ${result.total} on ${result.networkId})`,
      )
    })

  syncOptions(market.command('show'))
    .description('show one listing by its key <providerPeerId>/<deviceId>')
    .argument('<key>', 'listing key, as printed by `rpib market list --json`')
    .action(async (key: string, opts: SyncOptions, cmd: Command) => {
      if (!/^[1-9A-HJ-NP-Za-km-z]{40,128}\/[a-z0-9][a-z0-9-]{0,63}$/.test(key)) {
        throw new UsageError(`"${key}" is not a listing key (<providerPeerId>/<deviceId>)`)
      }
      const fromDaemon = await askDaemon(cmd, { key })
      const entry =
        fromDaemon != null
          ? fromDaemon.entries[0]
          : await withMarket(cmd, opts, (node, book) => {
              const e = node.show(key)
              return e == null ? undefined : serialise(e, book)
            })
      if (entry == null) {
        throw new RpibError(
          'ERR_LISTING_NOT_FOUND',
          `no listing ${key} in the local replica; try a longer --wait`,
        )
      }
      const body = entry.listing.body
      emit(cmd, entry, () =>
        [
          `${body.name}  (${entry.key})`,
          body.description,
          `arch ${body.specs.arch}, ${body.specs.cpuCores} × ${body.specs.cpuModel}, cpu score ${body.specs.cpuScore}`,
          `memory ${body.specs.memoryMb} MB, disk free ${body.specs.diskFreeMb} MB`,
          `price ${body.satsPerHour} sats/hour, ${body.minHours}-${body.maxHours} hours, ${body.slots} slot(s)`,
          `images ${body.images.join(', ')}`,
          `ssh host key ${body.sshHostKey}`,
          `relays ${body.relays.length === 0 ? '-' : body.relays.join(', ')}`,
          `online ${entry.online ? 'yes' : 'not seen'}; version ${body.version}; signed ${new Date(entry.listing.createdAt).toISOString()}`,
          ...reputationLines(entry.reputationDetail),
        ].join('\n'),
      )
    })
}
