import type { Command } from 'commander'
import { readFile } from 'node:fs/promises'
import { homedir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { z } from 'zod'
import { marketListingsRoute } from '../daemon/market-routes.js'
import { createRentalRoute, getRentalRoute, listRentalsRoute } from '../daemon/renter-routes.js'
import { RpibError, UsageError } from '../errors.js'
import { qrTerminal } from '../payments/bip21.js'
import { connectToDaemon, type ApiClient } from './client.js'
import { emit, globalOptions } from './output.js'

type RentalView = z.infer<typeof getRentalRoute.response>

/** The command that connects to a rental: the lease prefix is enough, the daemon knows the rest. */
function sshCommand(r: RentalView, key: string): string {
  return r.ssh == null ? '' : `rpib ssh ${r.offerId.slice(0, 12)} -i ${key}`
}

const wholeNumber = (name: string, min: number) => (value: string) => {
  const n = z.coerce.number().int().min(min).max(1000).safeParse(value)
  if (!n.success) throw new UsageError(`--${name} must be a whole number from ${min} to 1000`)
  return n.data
}

/** Polls the daemon until the rental has a lease, ended, failed, or the deadline passes. */
async function waitForSsh(
  client: ApiClient,
  first: RentalView,
  deadline: number,
  onStatus: (r: RentalView) => void,
): Promise<RentalView> {
  let r = first
  let last = r.status
  while (r.ssh == null && r.endReason == null && r.error == null && Date.now() < deadline) {
    await delay(150) // a loopback call: the lease shows up as soon as the daemon has it
    r = await client.call(getRentalRoute, { params: { offerId: r.offerId } })
    if (r.status !== last) onStatus(r)
    last = r.status
  }
  return r
}

/**
 * The listings of a `--replicas K` rental: the named one first, then the cheapest others on the market that
 * offer the same image for these hours (from other owners with --distinct-owners). Throws when there are
 * fewer than K.
 */
async function chooseReplicas(
  client: ApiClient,
  named: string,
  o: { replicas: number; distinctOwners: boolean; hours: number; image?: string },
): Promise<string[]> {
  const { entries } = await client.call(marketListingsRoute, {
    query: { sort: 'price', order: 'asc', limit: 1000, presence: 'any' },
  })
  // cheapest first, but devices seen online before those whose presence is not known yet
  const ordered = [...entries.filter((e) => e.online), ...entries.filter((e) => !e.online)]
  const listings = ordered.map((e) => ({
    key: e.key,
    provider: e.provider,
    body: ListingShape.safeParse(e.listing),
  }))
  const first = listings.find((l) => l.key === named)
  const image = o.image ?? (first?.body.success === true ? first.body.data.body.images[0] : undefined)
  if (first == null || image == null) {
    throw new RpibError('ERR_UNKNOWN_LISTING', `no listing ${named} on this market; run rpib market list`)
  }
  const chosen = [first]
  for (const l of listings) {
    if (chosen.length >= o.replicas) break
    if (l.key === named || !l.body.success) continue
    const b = l.body.data.body
    if (!b.images.includes(image) || o.hours < b.minHours || o.hours > b.maxHours) continue
    if (o.distinctOwners && chosen.some((c) => c.provider === l.provider)) continue
    chosen.push(l)
  }
  if (chosen.length < o.replicas) {
    throw new RpibError(
      'ERR_NOT_ENOUGH_LISTINGS',
      `only ${chosen.length} listing(s) offer ${image} for ${o.hours} h` +
        (o.distinctOwners ? ' from distinct owners' : '') +
        `; ask for fewer --replicas`,
    )
  }
  return chosen.map((c) => c.key)
}

/** The parts of a signed listing `--replicas` looks at (the daemon already verified it). */
const ListingShape = z.object({
  body: z.object({
    images: z.array(z.string()).min(1),
    minHours: z.number().int(),
    maxHours: z.number().int(),
  }),
})

/** `rpib rent`, `rpib leases`: thin clients of the running daemon's /api/rentals. */
export function registerRent(program: Command): void {
  program
    .command('rent')
    .description('rent a listed device: get an offer, pay it, wait for the lease, print the SSH command')
    .argument('<listing>', 'listing key <providerPeerId>/<deviceId> (see rpib market list)')
    .requiredOption('--hours <n>', 'how many hours to rent')
    .option('--ssh-key <file>', 'your SSH public key', join(homedir(), '.ssh', 'id_ed25519.pub'))
    .option('--image <ref>', 'image to run (default: the listing’s first)')
    .option('--pay <how>', 'wallet (built-in) or external (prints the invoice)', 'wallet')
    .option('--wait <seconds>', 'how long to wait for the lease', '600')
    .option(
      '--replicas <k>',
      'rent K devices in parallel: this listing, then the cheapest matching',
      wholeNumber('replicas', 1),
      1,
    )
    .option('--distinct-owners', 'with --replicas: every device from a different owner')
    .action(
      async (
        listingKey: string,
        o: {
          hours: string
          sshKey: string
          image?: string
          pay: string
          wait: string
          replicas: number
          distinctOwners?: boolean
        },
        cmd: Command,
      ) => {
        const hours = Number(o.hours)
        if (!Number.isInteger(hours) || hours < 1)
          throw new UsageError('--hours must be a whole number of hours ≥ 1')
        if (o.pay !== 'wallet' && o.pay !== 'external') throw new UsageError('--pay is wallet or external')
        if (o.replicas > 1 && o.pay !== 'wallet')
          throw new UsageError('--replicas pays from the built-in wallet')
        const publicKey = await readFile(o.sshKey, 'utf8').catch(() => {
          throw new UsageError(
            `cannot read the SSH public key ${o.sshKey}; pass --ssh-key FILE (ssh-keygen -t ed25519 makes one)`,
          )
        })
        const { home, json } = globalOptions(cmd)
        const { client } = await connectToDaemon(home)
        const key = o.sshKey.replace(/\.pub$/, '')
        const deadline = Date.now() + Number(o.wait) * 1000
        const body = {
          hours,
          sshPublicKeys: [publicKey.trim()],
          pay: o.pay as 'wallet' | 'external',
          ...(o.image != null ? { image: o.image } : {}),
        }
        if (o.replicas > 1) {
          const keys = await chooseReplicas(client, listingKey, {
            replicas: o.replicas,
            distinctOwners: o.distinctOwners === true,
            hours,
            ...(o.image != null ? { image: o.image } : {}),
          })
          const results = await Promise.all(
            keys.map(async (k) => {
              try {
                const made = await client.call(createRentalRoute, { body: { ...body, listingKey: k } })
                const r = await waitForSsh(client, made, deadline, () => undefined)
                if (r.ssh == null)
                  return { listingKey: k, offerId: r.offerId, error: r.error ?? `no lease yet (${r.status})` }
                return {
                  listingKey: k,
                  offerId: r.offerId,
                  expiresAt: r.ssh.expiresAt,
                  sshCommand: sshCommand(r, key),
                }
              } catch (err) {
                return { listingKey: k, error: err instanceof Error ? err.message : String(err) }
              }
            }),
          )
          emit(cmd, { replicas: results }, () =>
            results
              .map((x) =>
                'error' in x
                  ? `✗ ${x.listingKey}: ${x.error}`
                  : `✓ ${x.listingKey}: lease ${x.offerId.slice(0, 12)} until ${new Date(x.expiresAt).toISOString()}\n  connect: ${x.sshCommand}`,
              )
              .join('\n'),
          )
          const failed = results.filter((x) => 'error' in x).length
          if (failed > 0) {
            throw new RpibError(
              'ERR_RENT_FAILED',
              `${failed} of ${results.length} replicas failed (see above)`,
            )
          }
          return
        }
        const made = await client.call(createRentalRoute, { body: { ...body, listingKey } })
        if (!json) {
          process.stdout.write(`offer ${made.offerId.slice(0, 12)}: ${made.priceSats} sats for ${hours} h\n`)
          if (o.pay === 'external') {
            process.stdout.write(`pay ${made.invoice.uri}\n${await qrTerminal(made.invoice.uri)}\n`)
          } else if (made.paymentTxid != null) {
            process.stdout.write(`paid from the built-in wallet: ${made.paymentTxid}\n`)
          }
        }
        const r = await waitForSsh(client, made, deadline, (x) => {
          if (!json) process.stdout.write(`… ${x.status}\n`)
        })
        if (r.ssh == null) {
          throw new RpibError(
            'ERR_RENT_FAILED',
            r.error ?? `no lease yet (${r.status}); follow it with \`rpib leases\``,
          )
        }
        emit(cmd, { ...r, sshCommand: sshCommand(r, key) }, () =>
          [
            `lease active until ${new Date(r.ssh!.expiresAt).toISOString()}`,
            `connect: ${sshCommand(r, key)}`,
          ].join('\n'),
        )
      },
    )

  program
    .command('leases')
    .description('your rentals: status, expiry and how to connect')
    .action(async (_o, cmd: Command) => {
      const { client } = await connectToDaemon(globalOptions(cmd).home)
      const { rentals } = await client.call(listRentalsRoute)
      emit(cmd, { rentals }, () =>
        rentals.length === 0
          ? 'no rentals yet (rpib market list, then rpib rent <listing> --hours N)'
          : rentals
              .map(
                (r) =>
                  `${r.offerId.slice(0, 12)}  ${r.status.padEnd(16)}  ${String(r.priceSats).padStart(8)} sats  ${r.listingKey}` +
                  (r.ssh != null ? `  until ${new Date(r.ssh.expiresAt).toISOString()}` : '') +
                  (r.endReason != null ? `  (${r.endReason})` : '') +
                  (r.error != null ? `  ! ${r.error}` : ''),
              )
              .join('\n'),
      )
    })
}
