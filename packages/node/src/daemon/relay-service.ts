import { z } from 'zod'
import { defineRoute } from '../api/contract.js'
import { ApiError } from '../api/problem.js'
import { logger } from '../log.js'
import { startRelayNode, type RelayNode } from '../relay/relay-node.js'
import type { DaemonService, ServiceContext } from './service.js'

export const RelayInfoSchema = z.object({
  peerId: z.string(),
  ssh: z.object({
    host: z.string(),
    port: z.number().int(),
    hostKeyFingerprint: z.string().describe('pin this: `SHA256:…` of the jump server host key'),
    hostPublicKey: z.string(),
  }),
  http: z.object({ host: z.string(), port: z.number().int() }).optional(),
  stats: z.record(z.string(), z.unknown()).describe('counters only: relays log nothing else'),
})

export const relayRoute = defineRoute({
  id: 'getRelay',
  method: 'GET',
  path: '/api/relay',
  tag: 'relay',
  auth: 'token',
  summary: 'The relay role: SSH jump server and HTTP ingress addresses, host key and counters',
  response: RelayInfoSchema,
})

/**
 * The relay role (`rpib daemon --relay`): the SSH jump server providers hold reverse tunnels on, and HTTP
 * ingress over those tunnels. The circuit-relay-v2 server runs inside the market's libp2p node (the
 * composition root adds it there), so the node keeps one peer id and one set of connections.
 */
export function createRelayService(ctx: ServiceContext): DaemonService {
  let relay: RelayNode | undefined
  return {
    name: 'relay',
    async start() {
      const c = ctx.config.relay
      relay = await startRelayNode({
        home: ctx.home,
        identity: ctx.identity.privateKey,
        listenHost: c.listenHost,
        sshPort: c.sshPort,
        ...(c.httpPort != null ? { httpPort: c.httpPort } : {}),
        logger: logger('rpib:relay'),
      })
      const info = relay.info()
      ctx.log.info('relay.listening', { ssh: info.ssh, http: info.http })
    },
    async stop() {
      const stopping = relay
      relay = undefined
      await stopping?.stop()
    },
    registerRoutes(router) {
      router.route(relayRoute, () => {
        if (relay == null)
          throw new ApiError(503, 'ERR_RELAY_NOT_RUNNING', 'the relay is not running yet; retry shortly')
        const { p2p: _p2p, ...info } = relay.info()
        return { ...info, stats: relay.stats() as Record<string, unknown> }
      })
    },
  }
}
