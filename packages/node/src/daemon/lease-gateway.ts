import type { Libp2p } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import { z } from 'zod'
import type { Lease } from '@rpib/protocol'
import { defineRoute } from '../api/contract.js'
import { ApiError } from '../api/problem.js'
import type { ApiRouter } from '../api/router.js'
import { RpibError } from '../errors.js'
import { dialSsh } from '../tunnel/ssh-protocol.js'
import { pipeStream } from '../tunnel/stream-pipe.js'

/** The `Upgrade:` token of the lease SSH byte stream. */
export const LEASE_SSH_UPGRADE = 'rpib-ssh'

export const leaseSshRoute = defineRoute({
  id: 'leaseSshStream',
  method: 'GET',
  path: '/api/rentals/:offerId/ssh',
  tag: 'rentals',
  auth: 'token',
  summary:
    'Byte stream to the lease’s SSH server over the daemon’s libp2p node (HTTP/1.1 Upgrade: rpib-ssh); ' +
    '`rpib proxy <lease>` is the OpenSSH ProxyCommand that uses it',
  params: z.strictObject({ offerId: z.string().regex(/^[0-9a-f]{64}$/) }),
  response: z.never(),
})

export interface LeaseGatewayDeps {
  libp2p(): Pick<Libp2p, 'dialProtocol'> | undefined
  /** the signed Lease of an active rental of this renter, if any */
  lease(offerId: string): { lease?: Lease; ended: boolean } | undefined
}

/**
 * SSH for renters through their own daemon: the daemon is already connected to the provider (market
 * gossip, relays, hole punching), so `rpib proxy <lease>` only joins stdin/stdout to this route instead of
 * starting a libp2p node of its own and dialing from scratch. SSH stays end to end: the daemon forwards
 * bytes, OpenSSH checks the provider's host key.
 */
export function registerLeaseGateway(router: ApiRouter, deps: LeaseGatewayDeps): void {
  router.upgrade(leaseSshRoute, LEASE_SSH_UPGRADE, async ({ params }) => {
    const rental = deps.lease(params.offerId)
    if (rental === undefined) throw new ApiError(404, 'ERR_UNKNOWN_RENTAL', `no rental ${params.offerId}`)
    if (rental.ended)
      throw new ApiError(409, 'ERR_LEASE_ENDED', `lease ${params.offerId.slice(0, 12)} has ended`)
    const lease = rental.lease
    if (lease === undefined)
      throw new ApiError(
        409,
        'ERR_LEASE_NOT_ACTIVE',
        `lease ${params.offerId.slice(0, 12)} is not active yet`,
      )
    const libp2p = deps.libp2p()
    if (libp2p === undefined)
      throw new ApiError(503, 'ERR_MARKET_NOT_RUNNING', 'the market is not running yet')
    // the provider's signed endpoints, or just its peer id: libp2p then uses the addresses it knows
    const provider = peerIdFromString(lease.signer)
    const addrs: Multiaddr[] = []
    for (const e of lease.body.ssh.endpoints) {
      try {
        const ma = multiaddr(e)
        if (ma.getComponents().some((c) => c.name === 'p2p' && c.value === lease.signer)) addrs.push(ma)
      } catch {
        // not a multiaddr (a jump relay endpoint): not for libp2p
      }
    }
    let stream
    try {
      stream = await dialSsh(libp2p, addrs.length > 0 ? addrs : provider, AbortSignal.timeout(20_000))
    } catch (err) {
      const message = err instanceof RpibError ? err.message : String(err)
      throw new ApiError(502, 'ERR_SSH_DIAL', `${message}; is the provider online? (rpib market show)`)
    }
    return async (socket) => {
      if (socket.destroyed) {
        stream.abort(new Error('the client left'))
        return
      }
      await pipeStream(stream, { readable: socket, writable: socket })
    }
  })
}
