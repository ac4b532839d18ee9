import type { Command } from 'commander'
import { readFile } from 'node:fs/promises'
import { homedir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { createRentalRoute, getRentalRoute, listRentalsRoute } from '../daemon/renter-service.js'
import { RpibError, UsageError } from '../errors.js'
import { qrTerminal } from '../payments/bip21.js'
import { connectToDaemon } from './client.js'
import { emit, globalOptions } from './output.js'

function sshCommand(
  r: { ssh?: { user: string; endpoints: string[]; hostKeyFingerprint: string } },
  key: string,
): string {
  if (r.ssh == null) return ''
  const peer = r.ssh.endpoints.find((e) => e.startsWith('/')) ?? r.ssh.endpoints[0]
  return `rpib ssh --peer ${peer} --host-key ${r.ssh.hostKeyFingerprint} --user ${r.ssh.user} -i ${key}`
}

/** `rpib rent` and `rpib leases`: thin clients of the running daemon's /api/rentals. */
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
    .action(
      async (
        listingKey: string,
        o: { hours: string; sshKey: string; image?: string; pay: string; wait: string },
        cmd: Command,
      ) => {
        const hours = Number(o.hours)
        if (!Number.isInteger(hours) || hours < 1)
          throw new UsageError('--hours must be a whole number of hours ≥ 1')
        if (o.pay !== 'wallet' && o.pay !== 'external') throw new UsageError('--pay is wallet or external')
        const publicKey = await readFile(o.sshKey, 'utf8').catch(() => {
          throw new UsageError(
            `cannot read the SSH public key ${o.sshKey}; pass --ssh-key FILE (ssh-keygen -t ed25519 makes one)`,
          )
        })
        const { home, json } = globalOptions(cmd)
        const { client } = await connectToDaemon(home)
        let r = await client.call(createRentalRoute, {
          body: {
            listingKey,
            hours,
            sshPublicKeys: [publicKey.trim()],
            pay: o.pay,
            ...(o.image != null ? { image: o.image } : {}),
          },
        })
        if (!json) {
          process.stdout.write(`offer ${r.offerId.slice(0, 12)}: ${r.priceSats} sats for ${hours} h\n`)
          if (o.pay === 'external') {
            process.stdout.write(`pay ${r.invoice.uri}\n${await qrTerminal(r.invoice.uri)}\n`)
          } else if (r.paymentTxid != null) {
            process.stdout.write(`paid from the built-in wallet: ${r.paymentTxid}\n`)
          }
        }
        const deadline = Date.now() + Number(o.wait) * 1000
        let last = r.status
        while (r.ssh == null && r.endReason == null && r.error == null && Date.now() < deadline) {
          await delay(500)
          r = await client.call(getRentalRoute, { params: { offerId: r.offerId } })
          if (!json && r.status !== last) process.stdout.write(`… ${(last = r.status)}\n`)
        }
        if (r.ssh == null) {
          throw new RpibError(
            'ERR_RENT_FAILED',
            r.error ?? `no lease yet (${r.status}); follow it with \`rpib leases\``,
          )
        }
        const key = o.sshKey.replace(/\.pub$/, '')
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
