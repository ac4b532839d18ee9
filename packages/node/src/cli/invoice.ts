import type { Command } from 'commander'
import { createInvoiceFileStore } from '../payments/invoice-store.js'
import {
  createInvoiceService,
  invoicePaymentRequest,
  type InvoiceService,
} from '../payments/invoice-service.js'
import type { InvoiceRecord } from '../payments/invoice-store.js'
import { openWallet } from '../payments/wallet.js'
import { emit } from './output.js'
import { parsePositiveInt, parseSats, resolveBackend, withBackendOptions } from './wallet.js'

function withPolicyOptions(cmd: Command): Command {
  return withBackendOptions(cmd)
    .option('--confirmations <n>', 'confirmations an invoice payment needs', '1')
    .option('--zero-conf-max <sats>', 'accept unconfirmed payments for invoices up to this amount', '0')
}

async function service(cmd: Command): Promise<InvoiceService> {
  const o = cmd.optsWithGlobals<{ confirmations: string; zeroConfMax: string }>()
  const policy = {
    confirmationsRequired: parsePositiveInt(o.confirmations, '--confirmations'),
    zeroConfMaxSats: o.zeroConfMax === '0' ? 0 : parseSats(o.zeroConfMax, '--zero-conf-max'),
  }
  const { home, backend } = await resolveBackend(cmd)
  const wallet = await openWallet({ home, backend })
  return createInvoiceService({ store: createInvoiceFileStore(home), backend, wallet, policy })
}

function line(i: InvoiceRecord): string {
  const extra =
    i.shortfallSats > 0 && i.receivedSats > 0
      ? ` (short ${i.shortfallSats})`
      : i.excessSats > 0
        ? ` (excess ${i.excessSats})`
        : i.lateSats > 0
          ? ` (late ${i.lateSats})`
          : ''
  return `${i.id.slice(0, 12)}  ${i.status.padEnd(9)}  ${String(i.amountSats).padStart(10)} sats  ${i.address}${extra}`
}

export function registerInvoice(program: Command): void {
  const invoice = program.command('invoice').description("this provider's Bitcoin invoices")

  withPolicyOptions(
    invoice
      .command('list')
      .description('list invoices, refreshed from the chain')
      .option('--offline', 'show the stored state without asking the chain'),
  ).action(async (opts: { offline?: boolean }, cmd: Command) => {
    const svc = await service(cmd)
    if (opts.offline !== true) await svc.poll()
    const all = svc.list()
    emit(cmd, all, () => (all.length === 0 ? 'no invoices' : all.map(line).join('\n')))
  })

  withPolicyOptions(
    invoice
      .command('show')
      .description('show one invoice with its payment URI and QR code')
      .argument('<id>', 'invoice id (or its first 6+ characters)')
      .option('--offline', 'show the stored state without asking the chain'),
  ).action(async (id: string, opts: { offline?: boolean }, cmd: Command) => {
    const svc = await service(cmd)
    if (opts.offline !== true) await svc.poll()
    const inv = svc.get(id)
    const request = await invoicePaymentRequest(inv)
    emit(cmd, { ...inv, uri: request.uri }, () =>
      [
        line(inv),
        `expires ${new Date(inv.expiresAt).toISOString()}`,
        `received ${inv.receivedSats} sats, ${inv.payments.length} payment(s)${inv.reorgs > 0 ? `, ${inv.reorgs} reorg(s)` : ''}`,
        request.uri,
        request.terminal,
      ].join('\n'),
    )
  })

  withPolicyOptions(
    invoice
      .command('create')
      .description('issue an invoice on a fresh address (the daemon does this for each offer)')
      .argument('<sats>', 'amount in satoshis')
      .option('--expires-in <minutes>', 'minutes until the invoice expires', '30')
      .option('--label <text>', 'label shown in the payer wallet'),
  ).action(async (sats: string, opts: { expiresIn: string; label?: string }, cmd: Command) => {
    const svc = await service(cmd)
    const inv = await svc.create({
      amountSats: parseSats(sats),
      expiresInMs: parsePositiveInt(opts.expiresIn, '--expires-in') * 60_000,
      ...(opts.label != null ? { label: opts.label } : {}),
    })
    const request = await invoicePaymentRequest(inv)
    emit(cmd, { ...inv, uri: request.uri }, () => `${line(inv)}\n${request.uri}\n${request.terminal}`)
  })
}
