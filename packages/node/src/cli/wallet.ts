import type { Command } from 'commander'
import { readFile } from 'node:fs/promises'
import { createBackend } from '../payments/backend-factory.js'
import type { ChainBackend } from '../payments/backend.js'
import { qrTerminal } from '../payments/bip21.js'
import { PaymentError } from '../payments/errors.js'
import { BitcoinNetworkName } from '../payments/networks.js'
import { readWalletFile } from '../payments/wallet-file.js'
import { createWallet, createWatchOnlyWallet, openWallet, type Wallet } from '../payments/wallet.js'
import { UsageError } from '../errors.js'
import { writePrivateFile } from '../config/paths.js'
import { registerDevchain } from './devchain.js'
import { registerInvoice } from './invoice.js'
import { emit, globalOptions } from './output.js'

/** Adds the chain-backend options shared by the wallet and invoice commands. */
export function withBackendOptions(cmd: Command): Command {
  return cmd
    .option(
      '--network <name>',
      'mainnet | testnet | signet | regtest (default: the wallet network, else regtest)',
    )
    .option(
      '--esplora-url <url>',
      'Esplora API base URL (default: $RPIB_ESPLORA_URL, the devchain on regtest, else a public explorer)',
    )
    .option(
      '--rpc-url <url>',
      'Bitcoin Core JSON-RPC URL, e.g. http://user:pass@127.0.0.1:18443 (default: $RPIB_RPC_URL)',
    )
    .option('--rpc-cookie <file>', "bitcoind's .cookie file for RPC authentication")
}

export function parseNetwork(value: string | undefined): BitcoinNetworkName | undefined {
  if (value == null) return undefined
  const r = BitcoinNetworkName.safeParse(value)
  if (!r.success) throw new UsageError(`unknown network "${value}"; use mainnet, testnet, signet or regtest`)
  return r.data
}

/** The network and backend a command works with, from its options, the environment and the wallet file. */
export async function resolveBackend(
  cmd: Command,
): Promise<{ home: string; network: BitcoinNetworkName; backend: ChainBackend }> {
  const { home } = globalOptions(cmd)
  const o = cmd.optsWithGlobals<{
    network?: string
    esploraUrl?: string
    rpcUrl?: string
    rpcCookie?: string
  }>()
  const file = await readWalletFile(home)
  const asked = parseNetwork(o.network)
  if (asked != null && file != null && asked !== file.network) {
    throw new PaymentError(
      'ERR_ADDRESS_NETWORK',
      `the wallet in ${home} is a ${file.network} wallet; drop --network or use --home for another wallet`,
    )
  }
  const network = asked ?? file?.network ?? 'regtest'
  const rpcUrl = o.rpcUrl ?? process.env.RPIB_RPC_URL
  const esploraUrl = o.esploraUrl ?? (rpcUrl == null ? process.env.RPIB_ESPLORA_URL : undefined)
  const backend = createBackend({
    network,
    ...(esploraUrl != null && esploraUrl !== '' ? { esploraUrl } : {}),
    ...(rpcUrl != null && rpcUrl !== '' ? { rpcUrl } : {}),
    ...(o.rpcCookie != null ? { rpcCookieFile: o.rpcCookie } : {}),
  })
  return { home, network, backend }
}

/** A whole, positive number of satoshis from a CLI argument. */
export function parseSats(value: string, what = 'amount'): number {
  if (!/^\d{1,16}$/.test(value))
    throw new UsageError(`${what} must be a whole number of satoshis (got "${value}")`)
  const n = Number(value)
  if (!Number.isSafeInteger(n) || n <= 0)
    throw new UsageError(`${what} must be a positive number of satoshis`)
  return n
}

export function parsePositiveInt(value: string, what: string): number {
  if (!/^\d{1,9}$/.test(value) || Number(value) <= 0)
    throw new UsageError(`${what} must be a positive whole number (got "${value}")`)
  return Number(value)
}

/** Reads a secret from an environment variable or, on a terminal, from a prompt without echo. */
export async function readSecret(envName: string, prompt: string): Promise<string | undefined> {
  const fromEnv = process.env[envName]
  if (fromEnv != null && fromEnv !== '') return fromEnv
  if (!process.stdin.isTTY) return undefined
  process.stderr.write(prompt)
  const stdin = process.stdin
  stdin.setRawMode(true)
  stdin.resume()
  try {
    let secret = ''
    for await (const chunk of stdin) {
      for (const ch of String(chunk)) {
        if (ch === '\r' || ch === '\n') return secret
        if (ch === '\u0003') throw new UsageError('cancelled')
        if (ch === '\u007f') secret = secret.slice(0, -1)
        else secret += ch
      }
    }
    return secret
  } finally {
    stdin.setRawMode(false)
    stdin.pause()
    process.stderr.write('\n')
  }
}

export async function requirePassphrase(): Promise<string> {
  const p = await readSecret('RPIB_WALLET_PASSPHRASE', 'wallet passphrase: ')
  if (p == null)
    throw new PaymentError(
      'ERR_WALLET_PASSPHRASE',
      'the wallet passphrase is needed: set RPIB_WALLET_PASSPHRASE or run in a terminal',
    )
  return p
}

async function open(cmd: Command, unlock: boolean): Promise<Wallet> {
  const { home, backend } = await resolveBackend(cmd)
  const passphrase = unlock ? await requirePassphrase() : undefined
  return openWallet({ home, backend, ...(passphrase != null ? { passphrase } : {}) })
}

function feeRateOption(v: string | undefined): number | undefined {
  return v == null ? undefined : parsePositiveInt(v, '--fee-rate')
}

export function registerWallet(program: Command): void {
  const wallet = program.command('wallet').description('the built-in Bitcoin wallet (BIP84 native segwit)')

  withBackendOptions(
    wallet
      .command('create')
      .description(
        'create a new wallet; prints the recovery phrase once (passphrase: $RPIB_WALLET_PASSPHRASE or prompt)',
      )
      .option('--words <n>', '12 or 24 recovery words', '24'),
  ).action(async (opts: { words: string }, cmd: Command) => {
    const { home } = globalOptions(cmd)
    const network = parseNetwork(cmd.optsWithGlobals<{ network?: string }>().network) ?? 'regtest'
    if (opts.words !== '12' && opts.words !== '24') throw new UsageError('--words must be 12 or 24')
    const passphrase = await requirePassphrase()
    const { generateMnemonic } = await import('../payments/keys.js')
    const created = await createWallet({
      home,
      network,
      passphrase,
      mnemonic: generateMnemonic(opts.words === '12' ? 12 : 24),
    })
    const data = { network, accountPub: created.file.accountPub, mnemonic: created.mnemonic }
    emit(
      cmd,
      data,
      () =>
        `new ${network} wallet\naccount key: ${data.accountPub}\n\nrecovery phrase (write it down, it is shown only once):\n${data.mnemonic}`,
    )
  })

  withBackendOptions(
    wallet
      .command('restore')
      .description(
        'restore from a recovery phrase ($RPIB_WALLET_MNEMONIC, --mnemonic-file or prompt), or watch an account key with --xpub',
      )
      .option('--mnemonic-file <file>', 'read the recovery phrase from this file')
      .option(
        '--xpub <key>',
        'watch-only: an account public key (zpub/vpub/xpub/tpub); earnings go straight to a cold wallet',
      ),
  ).action(async (opts: { mnemonicFile?: string; xpub?: string }, cmd: Command) => {
    const { home } = globalOptions(cmd)
    const network = parseNetwork(cmd.optsWithGlobals<{ network?: string }>().network) ?? 'regtest'
    if (opts.xpub != null) {
      const file = await createWatchOnlyWallet({ home, network, accountPub: opts.xpub })
      emit(
        cmd,
        { network, accountPub: file.accountPub, watchOnly: true },
        () => `watch-only ${network} wallet for ${file.accountPub}`,
      )
      return
    }
    const mnemonic =
      opts.mnemonicFile != null
        ? (await readFile(opts.mnemonicFile, 'utf8')).trim()
        : await readSecret('RPIB_WALLET_MNEMONIC', 'recovery phrase: ')
    if (mnemonic == null)
      throw new UsageError(
        'give the recovery phrase in $RPIB_WALLET_MNEMONIC, with --mnemonic-file, or at the prompt',
      )
    const passphrase = await requirePassphrase()
    const created = await createWallet({ home, network, passphrase, mnemonic })
    emit(
      cmd,
      { network, accountPub: created.file.accountPub, watchOnly: false },
      () => `restored ${network} wallet ${created.file.accountPub}`,
    )
  })

  withBackendOptions(
    wallet
      .command('address')
      .description('show a fresh receive address (never handed out before)')
      .option('--qr', 'also print a QR code'),
  ).action(async (opts: { qr?: boolean }, cmd: Command) => {
    const w = await open(cmd, false)
    const a = await w.nextReceiveAddress()
    const qr = opts.qr === true ? await qrTerminal(`bitcoin:${a.address}`) : undefined
    emit(cmd, { address: a.address, index: a.index }, () => (qr != null ? `${a.address}\n${qr}` : a.address))
  })

  withBackendOptions(
    wallet.command('balance').description('confirmed and unconfirmed balance in satoshis'),
  ).action(async (_opts, cmd: Command) => {
    const w = await open(cmd, false)
    const b = await w.balance()
    emit(
      cmd,
      b,
      () =>
        `confirmed:   ${b.confirmedSats} sats\nunconfirmed: ${b.unconfirmedSats} sats\ntotal:       ${b.totalSats} sats`,
    )
  })

  withBackendOptions(
    wallet.command('history').description('transactions of this wallet, newest first'),
  ).action(async (_opts, cmd: Command) => {
    const w = await open(cmd, false)
    const h = await w.history()
    emit(cmd, h, () =>
      h.length === 0
        ? 'no transactions yet'
        : h
            .map(
              (e) =>
                `${e.txid}  ${e.netSats > 0 ? '+' : ''}${e.netSats} sats  ${e.confirmations === 0 ? 'unconfirmed' : `${e.confirmations} conf`}`,
            )
            .join('\n'),
    )
  })

  withBackendOptions(
    wallet
      .command('send')
      .description('send satoshis to an address (RBF on, change back to the wallet)')
      .argument('<address>', 'recipient address of the wallet network')
      .argument('<sats>', 'amount in satoshis')
      .option('--fee-rate <satPerVb>', 'fee rate in sat/vB (default: the backend 6-block estimate)'),
  ).action(async (address: string, sats: string, opts: { feeRate?: string }, cmd: Command) => {
    const amountSats = parseSats(sats)
    const feeRate = feeRateOption(opts.feeRate)
    const w = await open(cmd, true)
    const r = await w.send({ to: address, amountSats, ...(feeRate != null ? { feeRate } : {}) })
    emit(
      cmd,
      { txid: r.txid, amountSats, feeSats: r.feeSats },
      () => `sent ${amountSats} sats (fee ${r.feeSats}): ${r.txid}`,
    )
  })

  withBackendOptions(
    wallet
      .command('export-psbt')
      .description('build an unsigned PSBT paying an address, to sign in a hardware or external wallet')
      .argument('<address>', 'recipient address')
      .argument('<sats>', 'amount in satoshis')
      .option('--fee-rate <satPerVb>', 'fee rate in sat/vB')
      .option('--out <file>', 'write the base64 PSBT to this file instead of stdout'),
  ).action(async (address: string, sats: string, opts: { feeRate?: string; out?: string }, cmd: Command) => {
    const amountSats = parseSats(sats)
    const feeRate = feeRateOption(opts.feeRate)
    const w = await open(cmd, false)
    const draft = await w.createPsbt({ to: address, amountSats, ...(feeRate != null ? { feeRate } : {}) })
    if (opts.out != null) await writePrivateFile(opts.out, draft.psbtBase64 + '\n')
    emit(
      cmd,
      {
        psbt: draft.psbtBase64,
        feeSats: draft.feeSats,
        feeRate: draft.feeRate,
        ...(opts.out != null ? { file: opts.out } : {}),
      },
      () => (opts.out != null ? `PSBT written to ${opts.out} (fee ${draft.feeSats} sats)` : draft.psbtBase64),
    )
  })

  withBackendOptions(
    wallet
      .command('import-psbt')
      .description('sign a PSBT with this wallet when it can (passphrase), then finalize and broadcast it')
      .argument('<file>', 'file holding the base64 PSBT ("-" for stdin)')
      .option('--no-broadcast', 'only sign and print the PSBT'),
  ).action(async (path: string, opts: { broadcast: boolean }, cmd: Command) => {
    let b64 = (path === '-' ? await readStdin() : await readFile(path, 'utf8')).trim()
    const file = await readWalletFile(globalOptions(cmd).home)
    const canSign = file?.kind === 'hd' && (process.env.RPIB_WALLET_PASSPHRASE != null || process.stdin.isTTY)
    const w = await open(cmd, canSign)
    if (canSign) {
      await w.sync()
      b64 = await w.signPsbt(b64)
    }
    if (!opts.broadcast) {
      emit(cmd, { psbt: b64 }, () => b64)
      return
    }
    const r = await w.broadcastPsbt(b64)
    emit(cmd, { txid: r.txid }, () => `broadcast ${r.txid}`)
  })
}

async function readStdin(): Promise<string> {
  let s = ''
  for await (const chunk of process.stdin) s += String(chunk)
  return s
}

/** Registers `wallet`, `invoice` and `devchain` (one entry point for program.ts). */
export function registerPayments(program: Command): void {
  registerWallet(program)
  registerInvoice(program)
  registerDevchain(program)
}
