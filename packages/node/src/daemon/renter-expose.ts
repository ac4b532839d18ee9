/**
 * Renter side of `expose`: asks the provider of an active lease to publish a port of the lease container
 * as a website on its relays (`http://<lease>.<owner>.<relay>:<port>/`), over `/rpib/rent/1.0.0`.
 */
import type { Libp2p } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { PROTOCOLS, RentRpcResponseSchema, TIMEOUTS } from '@rpib/protocol'
import { z } from 'zod'
import { exposeRentalRoute } from './renter-routes.js'
import { ApiError } from '../api/problem.js'
import type { ApiRouter } from '../api/router.js'
import { RpibError } from '../errors.js'
import { rpcFrames } from '../rentals/wire.js'

export { ExposeResultSchema, exposeRentalRoute } from './renter-routes.js'

/** Sends `expose` to the provider that signed the offer; a refusal becomes an RpibError with its code. */
export async function requestExpose(o: {
  libp2p: Pick<Libp2p, 'dialProtocol'>
  provider: string
  offerId: string
  port: number
  signal?: AbortSignal
}): Promise<string[]> {
  const stream = await o.libp2p.dialProtocol(peerIdFromString(o.provider), PROTOCOLS.rent, {
    runOnLimitedConnection: true,
    signal: AbortSignal.any([AbortSignal.timeout(TIMEOUTS.dialTimeoutMs), ...(o.signal ? [o.signal] : [])]),
  })
  let response: z.infer<typeof RentRpcResponseSchema>
  try {
    const frames = rpcFrames(stream)
    await frames.write({ op: 'expose', offerId: o.offerId, port: o.port }, o.signal)
    response = await frames.read(RentRpcResponseSchema, o.signal)
    await stream.close()
  } catch (err) {
    stream.abort(err instanceof Error ? err : new Error(String(err)))
    throw err
  }
  if (!response.ok) throw new RpibError(response.error.code, `provider refused: ${response.error.message}`)
  if (!('urls' in response)) throw new RpibError('ERR_RPC_MALFORMED', 'the provider answered without URLs')
  return response.urls
}

export interface RenterExposeDeps {
  /** the market's libp2p node, once it runs */
  libp2p(): Pick<Libp2p, 'dialProtocol'> | undefined
  /** the provider peer id and status of one of this renter's rentals */
  rental(offerId: string): { provider: string; status: string } | undefined
}

/** Registers POST /api/rentals/:offerId/expose (the renter service calls this from registerRoutes). */
export function registerRenterExpose(router: ApiRouter, deps: RenterExposeDeps): void {
  router.route(exposeRentalRoute, async ({ params, body }) => {
    const rental = deps.rental(params.offerId)
    if (rental === undefined)
      throw new ApiError(404, 'ERR_UNKNOWN_RENTAL', `no rental ${params.offerId}; see \`rpib leases\``)
    if (rental.status !== 'active') {
      throw new ApiError(
        409,
        'ERR_EXPOSE_NOT_ACTIVE',
        `the lease is ${rental.status}; only an active lease can be exposed`,
      )
    }
    const libp2p = deps.libp2p()
    if (libp2p === undefined)
      throw new ApiError(503, 'ERR_MARKET_NOT_RUNNING', 'the market is not running yet')
    try {
      const urls = await requestExpose({
        libp2p,
        provider: rental.provider,
        offerId: params.offerId,
        port: body.port,
      })
      return { offerId: params.offerId, port: body.port, urls }
    } catch (err) {
      if (err instanceof RpibError) throw new ApiError(502, err.code, err.message)
      throw new ApiError(
        502,
        'ERR_PROVIDER_UNREACHABLE',
        `could not reach the provider: ${(err as Error).message}; is it online?`,
      )
    }
  })
}
