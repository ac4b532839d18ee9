import { z } from 'zod'
import type { Config } from '../../config/schema.js'
import { defineRoute } from '../contract.js'
import type { ApiRouter } from '../router.js'

export const ServiceStatusSchema = z.object({
  name: z.string(),
  state: z.enum(['starting', 'running', 'stopping', 'stopped', 'failed']),
  /** one line on something the owner should know, e.g. why a running provider cannot host leases */
  note: z.string().optional(),
})

export const NodeInfoSchema = z.object({
  peerId: z.string().describe("the node's libp2p peer id (its Ed25519 identity)"),
  version: z.string(),
  network: z.string().describe('market network id'),
  bitcoinNetwork: z.string(),
  roles: z.object({ renter: z.literal(true), provider: z.boolean(), relay: z.boolean() }),
  pid: z.number().int(),
  startedAt: z.iso.datetime(),
  uptimeSeconds: z.number().int().nonnegative(),
  apiUrl: z.string(),
  services: z.array(ServiceStatusSchema),
})
export type NodeInfo = z.infer<typeof NodeInfoSchema>

export const healthRoute = defineRoute({
  id: 'getHealth',
  method: 'GET',
  path: '/api/health',
  tag: 'node',
  auth: 'public',
  summary:
    'Liveness: `ok` while the daemon serves, `stopping` during shutdown (public, reveals nothing else)',
  response: z.object({ status: z.enum(['ok', 'stopping']) }),
})

export const nodeRoute = defineRoute({
  id: 'getNode',
  method: 'GET',
  path: '/api/node',
  tag: 'node',
  auth: 'token',
  summary: 'This node: peer id, version, roles, network, uptime and the state of each service',
  response: NodeInfoSchema,
})

export const configRoute = defineRoute({
  id: 'getConfig',
  method: 'GET',
  path: '/api/config',
  tag: 'node',
  auth: 'token',
  summary: 'The effective configuration (defaults < config file < RPIB_* env < flags); see docs/CONFIG.md',
  response: z.object({
    home: z.string().describe('the data directory'),
    configFile: z.string().optional().describe('the config file that was read, if any'),
    config: z.record(z.string(), z.unknown()),
  }),
})

export interface NodeRouteDeps {
  info(): NodeInfo
  health(): 'ok' | 'stopping'
  home: string
  configFile?: string
  config: Config
}

export function registerNodeRoutes(router: ApiRouter, deps: NodeRouteDeps): void {
  router.route(healthRoute, () => ({ status: deps.health() }))
  router.route(nodeRoute, () => deps.info())
  router.route(configRoute, () => ({ home: deps.home, configFile: deps.configFile, config: deps.config }))
}
