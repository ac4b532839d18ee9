import type { Command } from 'commander'
import { exposeRentalRoute } from '../daemon/renter-routes.js'
import { UsageError } from '../errors.js'
import { connectToDaemon } from './client.js'
import { resolveLease } from './lease.js'
import { emit, globalOptions } from './output.js'

/** `rpib lease expose <lease> <port>`: the lease's web server on the provider's relays. */
export function addLeaseExpose(lease: Command): void {
  lease
    .command('expose')
    .description('publish a port of an active lease as a website on the provider’s relays (HTTP ingress)')
    .argument('<lease>', 'offer id of the lease, or a unique prefix of it (see `rpib leases`)')
    .argument('<port>', 'TCP port the web server listens on inside the lease container (e.g. 80)')
    .action(async (leaseArg: string, portArg: string, _opts: unknown, cmd: Command) => {
      const port = Number(portArg)
      if (!/^[0-9]{1,5}$/.test(portArg) || port < 1 || port > 65535)
        throw new UsageError(`port must be 1-65535, got "${portArg}"`)
      const { client } = await connectToDaemon(globalOptions(cmd).home)
      const offerId = await resolveLease(client, leaseArg)
      const r = await client.call(exposeRentalRoute, { params: { offerId }, body: { port } })
      emit(cmd, r, () =>
        [`port ${r.port} of lease ${r.offerId.slice(0, 12)} is served at:`, ...r.urls].join('\n'),
      )
    })
}
