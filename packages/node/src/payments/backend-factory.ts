import { z } from 'zod'
import type { ChainBackend } from './backend.js'
import { createCoreRpcBackend } from './core-rpc.js'
import { createEsploraBackend } from './esplora.js'
import { PaymentError } from './errors.js'
import type { BitcoinNetworkName } from './networks.js'

/** Port the CLI's `rpib devchain start` listens on by default (electrs' regtest HTTP port). */
export const DEVCHAIN_DEFAULT_PORT = 3002

/** Public Esplora instances used when nothing else is configured (regtest: the local devchain). */
export const DEFAULT_ESPLORA_URLS: Record<BitcoinNetworkName, string> = {
  mainnet: 'https://blockstream.info/api',
  testnet: 'https://mempool.space/testnet4/api',
  signet: 'https://mempool.space/signet/api',
  regtest: `http://127.0.0.1:${DEVCHAIN_DEFAULT_PORT}`,
}

export const BackendConfig = z.object({
  network: z.enum(['mainnet', 'testnet', 'signet', 'regtest']),
  esploraUrl: z.url({ protocol: /^https?$/ }).optional(),
  rpcUrl: z.url({ protocol: /^https?$/ }).optional(),
  rpcCookieFile: z.string().optional(),
})
export type BackendConfig = z.infer<typeof BackendConfig>

/** The chain backend for a configuration: Bitcoin Core when an RPC URL is given, else Esplora. */
export function createBackend(config: BackendConfig): ChainBackend {
  const parsed = BackendConfig.safeParse(config)
  if (!parsed.success) {
    throw new PaymentError(
      'ERR_BACKEND_UNREACHABLE',
      `invalid backend settings: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
    )
  }
  const c = parsed.data
  if (c.rpcUrl != null && c.esploraUrl != null) {
    throw new PaymentError(
      'ERR_BACKEND_UNREACHABLE',
      'give either an Esplora URL or a Bitcoin Core RPC URL, not both',
    )
  }
  if (c.rpcUrl != null) {
    return createCoreRpcBackend({
      url: c.rpcUrl,
      network: c.network,
      ...(c.rpcCookieFile != null ? { cookieFile: c.rpcCookieFile } : {}),
    })
  }
  return createEsploraBackend({ url: c.esploraUrl ?? DEFAULT_ESPLORA_URLS[c.network] })
}
