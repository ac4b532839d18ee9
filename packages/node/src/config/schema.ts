import { z } from 'zod'
import { P2pConfigSchema } from '../p2p/config.js'
import { NetworkIdSchema } from '../p2p/network-id.js'

/**
 * The daemon's configuration file (`<home>/config.json`), every key optional with a default. Objects
 * are strict so a typo (`"api": { "prot": 1 }`) is an error naming the key instead of a silent default.
 * Documented key by key in docs/CONFIG.md; `rpib config schema` prints the JSON Schema.
 */

/** The default local API port; 0 picks a free port (the CLI finds it through `<home>/daemon.json`). */
export const DEFAULT_API_PORT = 7742

export const LogLevelSchema = z.enum(['debug', 'info', 'warn', 'error'])
export type LogLevel = z.infer<typeof LogLevelSchema>

export const ApiConfigSchema = z
  .strictObject({
    /** loopback only: the API is a local door, never a network service */
    host: z.enum(['127.0.0.1', '::1']).default('127.0.0.1'),
    port: z.number().int().min(0).max(65535).default(DEFAULT_API_PORT),
    /** seconds between SSE heartbeat comments, so proxies and clients see a live stream */
    sseHeartbeatSeconds: z.number().min(0.01).max(300).default(15),
  })
  .prefault({})

export const RolesConfigSchema = z
  .strictObject({
    /** rent out this device (needs Docker) */
    provider: z.boolean().default(false),
    /** act as a public relay (circuit relay + SSH jump relay) */
    relay: z.boolean().default(false),
  })
  .prefault({})

export const BitcoinBackendKindSchema = z.enum(['devchain', 'esplora', 'core'])
export const BitcoinNetworkSchema = z.enum(['mainnet', 'testnet', 'signet', 'regtest'])

export const BitcoinConfigSchema = z
  .strictObject({
    /** devchain: the embedded regtest chain (tests, sandbox); esplora: REST; core: Bitcoin Core JSON-RPC */
    backend: BitcoinBackendKindSchema.default('devchain'),
    /** chain the wallet and invoices use; defaults from the market network (sandbox-* → regtest) */
    network: BitcoinNetworkSchema.optional(),
    /** base URL of the Esplora API or Bitcoin Core RPC endpoint (required unless devchain) */
    url: z.url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' }).optional(),
    /** Bitcoin Core `.cookie` file for RPC authentication (core only) */
    cookieFile: z.string().min(1).optional(),
    /** confirmations before an invoice counts as paid */
    confirmations: z.number().int().min(0).max(100).default(1),
  })
  .prefault({})

export const PresenceConfigSchema = z
  .strictObject({
    /** seconds between presence beats of a provider; adaptive slows it down as the market grows */
    intervalSeconds: z.number().int().min(5).max(3600).default(30),
    adaptive: z.boolean().default(true),
  })
  .prefault({})

export const MarketConfigSchema = z
  .strictObject({
    /**
     * What to replicate of the listings store: `all` (renters, relays), `own` (a provider-only node keeps
     * just its own listing pinned), `auto` (own for a provider without the relay role, else all).
     */
    replicate: z.enum(['auto', 'all', 'own']).default('auto'),
  })
  .prefault({})

export const RelayConfigSchema = z
  .strictObject({
    /** where the relay's SSH jump server and HTTP ingress listen (a public relay: 0.0.0.0) */
    listenHost: z.string().min(1).default('0.0.0.0'),
    /** SSH jump server port (renters: `ssh -J jump@host:port …`); 0 picks a free port */
    sshPort: z.number().int().min(0).max(65535).default(2222),
    /** HTTP ingress port for renters' websites; null turns ingress off */
    httpPort: z.number().int().min(0).max(65535).nullable().default(8080),
  })
  .prefault({})

/** One device this provider rents out (the listing is signed and published by the daemon). */
export const ProviderDeviceSchema = z.strictObject({
  id: z.string().regex(/^[a-z0-9][a-z0-9-]{0,63}$/, 'device id must match [a-z0-9][a-z0-9-]{0,63}'),
  name: z.string().min(1).max(64),
  description: z.string().max(2000).default(''),
  satsPerHour: z.number().int().min(1),
  minHours: z.number().int().min(1).default(1),
  maxHours: z.number().int().min(1).default(720),
  /** concurrent leases */
  slots: z.number().int().min(1).max(64).default(1),
  /** local images to offer (must exist on this device; see scripts/build-base-image) */
  images: z.array(z.string().min(1)).min(1).default(['rpib/base:bookworm']),
  limits: z
    .strictObject({
      cpus: z.number().int().min(1).default(1000),
      memoryMb: z.number().int().min(16).default(512),
      diskMb: z.number().int().min(16).default(2048),
      pidsLimit: z.number().int().min(16).default(256),
    })
    .prefault({}),
})

/** A jump relay the provider holds a reverse tunnel on (renters reach it through the relay). */
export const ProviderRelaySchema = z.strictObject({
  /** the relay's SSH jump server, `host:port` */
  ssh: z.string().regex(/^(?:[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\]):[0-9]{1,5}$/, 'must be host:port'),
  /** pin the relay's host key (`SHA256:…`, from `rpib relay` or GET /api/relay); recommended */
  hostKeyFingerprint: z
    .string()
    .regex(/^SHA256:[A-Za-z0-9+/]{43}$/, 'must be SHA256:<43 base64 characters>')
    .optional(),
  /** the relay's HTTP ingress port, when it serves leases' websites */
  httpPort: z.number().int().min(1).max(65535).optional(),
  /** DNS name whose subdomains point at the relay (site URLs); defaults to the ssh host */
  httpDomain: z
    .string()
    .regex(/^[A-Za-z0-9.-]{1,200}$/)
    .optional(),
  /** the relay's libp2p address (`…/p2p/<id>/p2p-circuit`), listed so renters can dial through it */
  multiaddr: z
    .string()
    .regex(/^\/[\x21-\x7e]{1,250}$/, 'must be a multiaddr')
    .optional(),
})

export const ProviderConfigSchema = z
  .strictObject({
    devices: z.array(ProviderDeviceSchema).max(16).default([]),
    /** relays to hold reverse SSH tunnels on (up to two at a time, the rest are spares) */
    relays: z.array(ProviderRelaySchema).max(8).default([]),
    /** embedded SSH server port on 127.0.0.1 (renters arrive over libp2p or relays); 0 picks one */
    sshPort: z.number().int().min(0).max(65535).default(0),
    /** Docker network the lease containers sit on */
    dockerNetwork: z
      .string()
      .regex(/^[a-z0-9][a-z0-9_.-]{0,62}$/)
      .default('rpib-leases'),
    /** seconds in an "hour" of lease time: 3600, or less on test networks so leases last seconds */
    secondsPerHour: z.number().int().min(1).max(3600).default(3600),
    /** invoices up to this amount count as paid once in the mempool (0-conf) */
    zeroConfMaxSats: z.number().int().min(0).default(0),
  })
  .prefault({})

export const LogConfigSchema = z
  .strictObject({
    /** structured JSON lines on stdout at or above this level */
    level: LogLevelSchema.default('info'),
  })
  .prefault({})

const ConfigObjectSchema = z.strictObject({
  /** lets editors validate the file against `rpib config schema`; ignored by the daemon */
  $schema: z.string().optional(),
  /** market network id: mainnet, testnet, regtest or sandbox-<id>; nodes of different ids never mix */
  network: NetworkIdSchema.default('regtest'),
  roles: RolesConfigSchema,
  api: ApiConfigSchema,
  // strict at this level so a typo such as `p2p.listn` is an error, like everywhere else
  p2p: P2pConfigSchema.strict().prefault({}),
  bitcoin: BitcoinConfigSchema,
  presence: PresenceConfigSchema,
  market: MarketConfigSchema,
  relay: RelayConfigSchema,
  provider: ProviderConfigSchema,
  log: LogConfigSchema,
})

/** Which bitcoin chain a market network pays on by default. */
export function defaultBitcoinNetwork(network: string): z.infer<typeof BitcoinNetworkSchema> {
  if (network === 'mainnet') return 'mainnet'
  if (network === 'testnet') return 'testnet'
  return 'regtest'
}

export const ConfigSchema = ConfigObjectSchema.superRefine((cfg, ctx) => {
  const chain = cfg.bitcoin.network ?? defaultBitcoinNetwork(cfg.network)
  if (cfg.bitcoin.backend === 'devchain' && chain !== 'regtest') {
    ctx.addIssue({
      code: 'custom',
      path: ['bitcoin', 'backend'],
      message: `devchain only runs regtest, but the bitcoin network is ${chain}; use esplora or core`,
    })
  }
  if (cfg.bitcoin.backend !== 'devchain' && cfg.bitcoin.url == null) {
    ctx.addIssue({
      code: 'custom',
      path: ['bitcoin', 'url'],
      message: `is required when bitcoin.backend is ${cfg.bitcoin.backend}`,
    })
  }
  if (cfg.provider.secondsPerHour !== 3600 && (cfg.network === 'mainnet' || cfg.network === 'testnet')) {
    ctx.addIssue({
      code: 'custom',
      path: ['provider', 'secondsPerHour'],
      message: 'a fast lease clock is only for regtest and sandbox networks',
    })
  }
  if (cfg.bitcoin.cookieFile != null && cfg.bitcoin.backend !== 'core') {
    ctx.addIssue({ code: 'custom', path: ['bitcoin', 'cookieFile'], message: 'only applies to backend core' })
  }
  if ((cfg.network === 'mainnet') !== (chain === 'mainnet')) {
    ctx.addIssue({
      code: 'custom',
      path: ['bitcoin', 'network'],
      message: `a ${cfg.network} market cannot pay on bitcoin ${chain}`,
    })
  }
}).transform((cfg) => {
  // The effective config has every derived default filled in, so consumers never re-derive them.
  const { $schema: _ignored, ...rest } = cfg
  const replicate =
    rest.market.replicate !== 'auto'
      ? rest.market.replicate
      : rest.roles.provider && !rest.roles.relay
        ? 'own'
        : 'all'
  return {
    ...rest,
    bitcoin: { ...rest.bitcoin, network: rest.bitcoin.network ?? defaultBitcoinNetwork(rest.network) },
    market: { replicate },
  }
})

/** What a config file (or any layer) may contain. */
export type ConfigInput = z.input<typeof ConfigSchema>
/** The effective, fully defaulted configuration the daemon runs with. */
export type Config = z.output<typeof ConfigSchema>

/** JSON Schema of the config file (for editors and docs). */
export function configJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(ConfigObjectSchema, { io: 'input', unrepresentable: 'any' }) as Record<
    string,
    unknown
  >
}
