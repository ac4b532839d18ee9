import { join } from 'node:path'
import { z } from 'zod'
import { readIfExists, writePrivateFile } from '../config/paths.js'
import { PaymentError } from './errors.js'

const Sats = z
  .number()
  .int()
  .nonnegative()
  .max(21_000_000 * 100_000_000)
const Txid = z.string().regex(/^[0-9a-f]{64}$/)

export const InvoicePaymentRecord = z.object({
  txid: Txid,
  vout: z.number().int().nonnegative(),
  valueSats: Sats,
  confirmations: z.number().int().nonnegative(),
  seenAt: z.number().int().nonnegative(),
  /** the outpoints the paying transaction spends: how a double spend is recognised */
  spends: z.array(z.object({ txid: Txid, vout: z.number().int().nonnegative() })),
})
export type InvoicePaymentRecord = z.infer<typeof InvoicePaymentRecord>

export const InvoiceRecord = z.object({
  id: z.string().regex(/^[0-9a-f]{32}$/),
  address: z.string(),
  addressIndex: z.number().int().nonnegative(),
  amountSats: Sats.min(1),
  createdAt: z.number().int().nonnegative(),
  expiresAt: z.number().int().nonnegative(),
  label: z.string().max(200).optional(),
  /** opaque reference the lease logic uses to find its invoice (e.g. the offer id) */
  reference: z.string().max(200).optional(),
  /** where refunds go, from the renter's RentRequest */
  refundAddress: z.string().optional(),
  status: z.enum(['awaiting', 'seen', 'confirmed', 'expired', 'underpaid', 'overpaid', 'paid-late']),
  paid: z.boolean(),
  receivedSats: Sats,
  settledSats: Sats,
  lateSats: Sats,
  shortfallSats: Sats,
  excessSats: Sats,
  payments: z.array(InvoicePaymentRecord),
  reorgs: z.number().int().nonnegative(),
  doubleSpends: z.array(z.object({ txid: Txid, replacedBy: Txid.optional(), at: z.number().int() })),
  refunds: z.array(z.object({ txid: Txid, address: z.string(), amountSats: Sats, at: z.number().int() })),
  updatedAt: z.number().int().nonnegative(),
})
export type InvoiceRecord = z.infer<typeof InvoiceRecord>

const StoreFile = z.object({ version: z.literal(1), invoices: z.array(InvoiceRecord) })

export interface InvoiceStore {
  load(): Promise<InvoiceRecord[]>
  save(invoices: InvoiceRecord[]): Promise<void>
}

/** Invoices as one JSON file (atomic writes, mode 0600) under `<dataDir>/payments/invoices.json`. */
export function createInvoiceFileStore(dataDir: string): InvoiceStore {
  const path = join(dataDir, 'payments', 'invoices.json')
  let writing: Promise<void> = Promise.resolve()
  return {
    async load() {
      const raw = await readIfExists(path)
      if (raw == null) return []
      let json: unknown
      try {
        json = JSON.parse(raw.toString('utf8'))
      } catch (err) {
        throw new PaymentError(
          'ERR_INVOICE_INVALID',
          `invoice store ${path} is not JSON; restore it from a backup`,
          { cause: err },
        )
      }
      const r = StoreFile.safeParse(json)
      if (!r.success)
        throw new PaymentError(
          'ERR_INVOICE_INVALID',
          `invoice store ${path} is damaged; restore it from a backup`,
        )
      return r.data.invoices
    },
    save(invoices) {
      const data = JSON.stringify({ version: 1, invoices }, null, 1)
      // writes are chained so two saves never race on the same temp file
      writing = writing.catch(() => undefined).then(() => writePrivateFile(path, data))
      return writing
    },
  }
}
