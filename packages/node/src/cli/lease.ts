import type { Command } from 'commander'
import { z } from 'zod'
import type { ApiClient } from './client.js'
import { RpibError, UsageError } from '../errors.js'
import {
  autoExtendRentalRoute,
  cancelRentalRoute,
  extendRentalRoute,
  getRentalRoute,
  listRentalsRoute,
} from '../daemon/renter-routes.js'
import { connectToDaemon } from './client.js'
import { addLeaseExpose } from './lease-expose.js'
import { emit, globalOptions } from './output.js'

/** The shortest lease id prefix accepted (6 hex digits: 16.7 million values). */
export const MIN_LEASE_PREFIX = 6

/**
 * The one id in `ids` that starts with `prefix` (a full 64-hex offer id or a prefix of ≥ 6 hex digits).
 * Throws UsageError for a malformed prefix, ERR_UNKNOWN_LEASE / ERR_AMBIGUOUS_LEASE otherwise.
 */
export function matchLeasePrefix(ids: readonly string[], prefix: string): string {
  const p = prefix.toLowerCase()
  if (!new RegExp(`^[0-9a-f]{${MIN_LEASE_PREFIX},64}$`).test(p)) {
    throw new UsageError(
      `lease "${prefix}" must be its offer id or a prefix of at least ${MIN_LEASE_PREFIX} hex digits (see rpib leases)`,
    )
  }
  const found = ids.filter((id) => id.startsWith(p))
  if (found.length === 0)
    throw new RpibError('ERR_UNKNOWN_LEASE', `no lease ${prefix} on this node; see rpib leases`)
  if (found.length > 1) {
    throw new RpibError(
      'ERR_AMBIGUOUS_LEASE',
      `lease prefix ${prefix} matches ${found.length} leases (${found.map((id) => id.slice(0, 12)).join(', ')}); give more digits`,
    )
  }
  return found[0]!
}

/** Resolves a lease id or prefix against the renter daemon's rentals. */
export async function resolveLease(client: ApiClient, prefix: string): Promise<string> {
  const { rentals } = await client.call(listRentalsRoute)
  return matchLeasePrefix(
    rentals.map((r) => r.offerId),
    prefix,
  )
}

type RentalView = z.infer<typeof getRentalRoute.response>

const iso = (ms: number) => new Date(ms).toISOString()

/** The human rendering of one rental. */
export function describeRental(r: RentalView): string {
  const lines = [
    `lease ${r.offerId}`,
    `  listing   ${r.listingKey}`,
    `  status    ${r.status}${r.endReason != null ? ` (${r.endReason})` : ''}`,
    `  paid      ${r.priceSats} sats${r.paymentTxid != null ? ` in ${r.paymentTxid}` : ''}`,
  ]
  if (r.expiresAt != null) lines.push(`  ${r.end != null ? 'ended    ' : 'expires  '} ${iso(r.expiresAt)}`)
  if (r.ssh != null) lines.push(`  ssh       user ${r.ssh.user}, host key ${r.ssh.hostKeyFingerprint}`)
  for (const e of r.extensions) {
    lines.push(
      `  extension +${e.addSeconds} s for ${e.priceSats} sats: ${e.status}` +
        (e.status === 'offered' ? ` (pay ${e.invoice.amountSats} sats to ${e.invoice.address})` : '') +
        (e.error != null ? ` ! ${e.error}` : ''),
    )
  }
  const a = r.autoExtend
  lines.push(
    `  auto-extend ${a.enabled ? 'on' : 'off'}` +
      (a.maxSats != null ? `, cap ${a.maxSats} sats` : '') +
      (a.spentSats > 0 ? `, ${a.spentSats} sats spent` : '') +
      (a.lastError != null ? `\n  ! ${a.lastError}` : ''),
  )
  if (r.end != null) {
    lines.push(`  served    ${r.end.servedSeconds} s; refund due ${r.end.refundDueSats} sats`)
  }
  if (r.error != null) lines.push(`  ! ${r.error}`)
  return lines.join('\n')
}

const wholeNumber = (name: string, min: number) => (value: string) => {
  const n = z.coerce.number().int().min(min).max(Number.MAX_SAFE_INTEGER).safeParse(value)
  if (!n.success) throw new UsageError(`--${name} must be a whole number ≥ ${min}`)
  return n.data
}

/** `rpib lease show|extend|cancel|auto-extend <id>`: one rental of this node, by id or prefix. */
export function registerLease(program: Command): void {
  const lease = program
    .command('lease')
    .description('one of your rentals: show, extend, cancel, auto-extend, expose')
  addLeaseExpose(lease)

  lease
    .command('show')
    .description('a rental: status, expiry, extensions, auto-renewal and the end with its refund')
    .argument('<id>', 'offer id or a unique prefix (≥ 6 hex digits)')
    .action(async (id: string, _o, cmd: Command) => {
      const { client } = await connectToDaemon(globalOptions(cmd).home)
      const offerId = await resolveLease(client, id)
      const r = await client.call(getRentalRoute, { params: { offerId } })
      emit(cmd, r, () => describeRental(r))
    })

  lease
    .command('extend')
    .description('buy more hours: the provider invoices them and the built-in wallet pays')
    .argument('<id>', 'offer id or a unique prefix (≥ 6 hex digits)')
    .requiredOption('--hours <n>', 'hours to add', wholeNumber('hours', 1))
    .option('--pay <how>', 'wallet (built-in) or external (prints the invoice)', 'wallet')
    .action(async (id: string, o: { hours: number; pay: string }, cmd: Command) => {
      if (o.pay !== 'wallet' && o.pay !== 'external') throw new UsageError('--pay is wallet or external')
      const { client } = await connectToDaemon(globalOptions(cmd).home)
      const offerId = await resolveLease(client, id)
      const r = await client.call(extendRentalRoute, {
        params: { offerId },
        body: { hours: o.hours, pay: o.pay },
      })
      emit(cmd, r, () => describeRental(r))
    })

  lease
    .command('cancel')
    .description('end a lease now; the provider refunds the unserved time to your wallet')
    .argument('<id>', 'offer id or a unique prefix (≥ 6 hex digits)')
    .action(async (id: string, _o, cmd: Command) => {
      const { client } = await connectToDaemon(globalOptions(cmd).home)
      const offerId = await resolveLease(client, id)
      const r = await client.call(cancelRentalRoute, { params: { offerId } })
      emit(cmd, r, () => describeRental(r))
    })

  lease
    .command('auto-extend')
    .description('renew automatically from the built-in wallet shortly before expiry, within a cap')
    .argument('<id>', 'offer id or a unique prefix (≥ 6 hex digits)')
    .argument('<on|off>', 'turn automatic renewal on or off')
    .option('--max-sats <n>', 'most to spend on automatic renewals in total', wholeNumber('max-sats', 1))
    .action(async (id: string, state: string, o: { maxSats?: number }, cmd: Command) => {
      if (state !== 'on' && state !== 'off') throw new UsageError('auto-extend takes on or off')
      const { client } = await connectToDaemon(globalOptions(cmd).home)
      const offerId = await resolveLease(client, id)
      const r = await client.call(autoExtendRentalRoute, {
        params: { offerId },
        body: { enabled: state === 'on', ...(o.maxSats != null ? { maxSats: o.maxSats } : {}) },
      })
      emit(cmd, r, () => describeRental(r))
    })
}
