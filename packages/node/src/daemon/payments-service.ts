import { z } from 'zod'
import { defineRoute } from '../api/contract.js'
import { ApiError } from '../api/problem.js'
import { logger } from '../log.js'
import type { ChainBackend } from '../payments/backend.js'
import { createBackend } from '../payments/backend-factory.js'
import { createInvoiceService, type InvoiceService } from '../payments/invoice-service.js'
import { createInvoiceFileStore } from '../payments/invoice-store.js'
import { readWalletFile } from '../payments/wallet-file.js'
import { openWallet, type Wallet } from '../payments/wallet.js'
import type { DaemonService, ServiceContext } from './service.js'

export const WalletInfoSchema = z.object({
  network: z.enum(['mainnet', 'testnet', 'signet', 'regtest']),
  watchOnly: z.boolean(),
  /** false when the daemon has no passphrase: it can receive and watch but not send or refund */
  unlocked: z.boolean(),
  balance: z.object({
    confirmedSats: z.number().int(),
    unconfirmedSats: z.number().int(),
    totalSats: z.number().int(),
  }),
})

const InvoiceSummarySchema = z.object({
  id: z.string(),
  address: z.string(),
  amountSats: z.number().int(),
  status: z.string(),
  receivedSats: z.number().int(),
  expiresAt: z.number().int(),
  reference: z.string().optional(),
})

export const walletRoute = defineRoute({
  id: 'getWallet',
  method: 'GET',
  path: '/api/wallet',
  tag: 'payments',
  auth: 'token',
  summary: "The node's wallet: network, whether it can sign, and its balance from the chain backend",
  response: WalletInfoSchema,
})

export const invoicesRoute = defineRoute({
  id: 'listInvoices',
  method: 'GET',
  path: '/api/invoices',
  tag: 'payments',
  auth: 'token',
  summary: "This node's invoices (one per offer it made), newest first",
  response: z.object({ invoices: z.array(InvoiceSummarySchema) }),
})

/**
 * Payments in the daemon: the chain backend from `config.bitcoin`, the wallet in the data directory
 * (unlocked with $RPIB_WALLET_PASSPHRASE when given) and the invoice watcher, whose status changes are
 * published as `invoice.status` events. A node without a wallet runs without invoices and says so.
 */
export function createPaymentsService(
  ctx: ServiceContext,
): DaemonService & { invoices(): InvoiceService | undefined; wallet(): Wallet | undefined } {
  let backend: ChainBackend | undefined
  let wallet: Wallet | undefined
  let invoices: InvoiceService | undefined
  let unlocked = false
  const needWallet = (): { wallet: Wallet; invoices: InvoiceService } => {
    if (wallet == null || invoices == null) {
      throw new ApiError(
        404,
        'ERR_NO_WALLET',
        `no wallet in ${ctx.home}; create one with \`rpib wallet create\``,
      )
    }
    return { wallet, invoices }
  }
  return {
    name: 'payments',
    invoices: () => invoices,
    wallet: () => wallet,
    async start() {
      const c = ctx.config.bitcoin
      backend = createBackend({
        network: c.network,
        ...(c.backend === 'core'
          ? { rpcUrl: c.url, ...(c.cookieFile != null ? { rpcCookieFile: c.cookieFile } : {}) }
          : c.url != null
            ? { esploraUrl: c.url }
            : {}),
      })
      const file = await readWalletFile(ctx.home)
      if (file == null) {
        ctx.log.warn('payments.no_wallet', { hint: 'rpib wallet create' })
        return
      }
      if (file.network !== c.network) {
        throw new ApiError(
          500,
          'ERR_WALLET_NETWORK',
          `the wallet in ${ctx.home} is a ${file.network} wallet but this node pays on ${c.network}`,
        )
      }
      const passphrase = process.env.RPIB_WALLET_PASSPHRASE
      wallet = await openWallet({
        home: ctx.home,
        backend,
        logger: logger('rpib:wallet'),
        ...(passphrase != null && passphrase !== '' ? { passphrase } : {}),
      })
      unlocked = passphrase != null && passphrase !== '' && !wallet.watchOnly
      invoices = createInvoiceService({
        store: createInvoiceFileStore(ctx.home),
        backend,
        wallet,
        policy: {
          confirmationsRequired: c.confirmations,
          zeroConfMaxSats: ctx.config.provider.zeroConfMaxSats,
        },
        logger: logger('rpib:invoices'),
        // the local devchain answers in microseconds: watch it closely so sandbox rentals start at once
        ...(c.backend === 'devchain' ? { pollIntervalMs: 200 } : {}),
      })
      invoices.on('status', ({ invoice, from, to }) =>
        ctx.events.publish('invoice.status', {
          id: invoice.id,
          from,
          to,
          receivedSats: invoice.receivedSats,
        }),
      )
      await invoices.start()
    },
    async stop() {
      await invoices?.stop()
      invoices = undefined
      wallet = undefined
      backend = undefined
    },
    registerRoutes(router) {
      router.route(walletRoute, async () => {
        const w = needWallet().wallet
        let balance
        try {
          balance = await w.balance()
        } catch (err) {
          throw new ApiError(
            503,
            'ERR_BACKEND_UNREACHABLE',
            `the chain backend did not answer: ${(err as Error).message}`,
          )
        }
        return { network: w.network, watchOnly: w.watchOnly, unlocked, balance }
      })
      router.route(invoicesRoute, () => ({
        invoices: needWallet()
          .invoices.list()
          .sort((a, b) => b.createdAt - a.createdAt)
          .map((i) => ({
            id: i.id,
            address: i.address,
            amountSats: i.amountSats,
            status: i.status,
            receivedSats: i.receivedSats,
            expiresAt: i.expiresAt,
            ...(i.reference != null ? { reference: i.reference } : {}),
          })),
      }))
    },
  }
}
