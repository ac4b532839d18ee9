import type { Command } from 'commander'
import { join } from 'node:path'
import { z } from 'zod'
import { DEVCHAIN_DEFAULT_PORT } from '../payments/backend-factory.js'
import { createDevchain } from '../payments/devchain/server.js'
import { PaymentError } from '../payments/errors.js'
import { UsageError } from '../errors.js'
import { emit, globalOptions } from './output.js'
import { parsePositiveInt, parseSats } from './wallet.js'

function devchainUrl(cmd: Command): string {
  const o = cmd.optsWithGlobals<{ url?: string }>()
  return (o.url ?? process.env.RPIB_ESPLORA_URL ?? `http://127.0.0.1:${DEVCHAIN_DEFAULT_PORT}`).replace(
    /\/+$/,
    '',
  )
}

/** Calls a devchain admin endpoint; a devchain error comes back as one clear line. */
async function admin<T>(cmd: Command, path: string, body: unknown, schema: z.ZodType<T>): Promise<T> {
  const url = devchainUrl(cmd)
  let res: Response
  try {
    res = await fetch(`${url}/admin/${path}`, {
      method: 'POST',
      body: JSON.stringify(body),
      headers: { 'content-type': 'application/json' },
    })
  } catch (err) {
    throw new PaymentError(
      'ERR_BACKEND_UNREACHABLE',
      `no devchain at ${url}; start one with \`rpib devchain start\` or pass --url`,
      { cause: err },
    )
  }
  const text = await res.text()
  if (res.status !== 200) throw new PaymentError('ERR_DEVCHAIN', `devchain refused: ${text.trim()}`)
  return schema.parse(JSON.parse(text))
}

export function registerDevchain(program: Command): void {
  const devchain = program
    .command('devchain')
    .description('the embedded regtest chain for tests and the local sandbox')

  devchain
    .command('start')
    .description('run a devchain in the foreground, serving an Esplora-compatible API on 127.0.0.1')
    .option('--port <port>', 'HTTP port', String(DEVCHAIN_DEFAULT_PORT))
    .option('--data-dir <dir>', 'where the chain is kept (default: <home>/devchain)')
    .option('--memory', 'keep nothing on disk')
    .option('--mine-interval <ms>', 'mine pending transactions every so many milliseconds')
    .action(
      async (
        opts: { port: string; dataDir?: string; memory?: boolean; mineInterval?: string },
        cmd: Command,
      ) => {
        const port = Number(opts.port)
        if (!Number.isInteger(port) || port < 0 || port > 65535)
          throw new UsageError('--port must be 0-65535')
        const dataDir =
          opts.memory === true ? undefined : (opts.dataDir ?? join(globalOptions(cmd).home, 'devchain'))
        const chain = createDevchain({
          port,
          ...(dataDir != null ? { dataDir } : {}),
          ...(opts.mineInterval != null
            ? { mineIntervalMs: parsePositiveInt(opts.mineInterval, '--mine-interval') }
            : {}),
        })
        await chain.start()
        emit(
          cmd,
          { url: chain.url, height: chain.chain.height, dataDir: dataDir ?? null },
          () => `devchain listening on ${chain.url} (height ${chain.chain.height})`,
        )
        await new Promise<void>((resolve) => {
          const stop = () => resolve()
          process.once('SIGINT', stop)
          process.once('SIGTERM', stop)
        })
        await chain.stop()
      },
    )

  devchain
    .command('mine')
    .description('mine blocks on a running devchain')
    .argument('[n]', 'number of blocks', '1')
    .option('--url <url>', 'devchain URL (default: $RPIB_ESPLORA_URL or http://127.0.0.1:3002)')
    .option('--address <address>', 'pay the block rewards to this regtest address')
    .action(async (n: string, opts: { address?: string }, cmd: Command) => {
      const blocks = parsePositiveInt(n, 'number of blocks')
      const r = await admin(
        cmd,
        'mine',
        { blocks, ...(opts.address != null ? { address: opts.address } : {}) },
        z.object({ hashes: z.array(z.string()), height: z.number() }),
      )
      emit(cmd, r, () => `mined ${r.hashes.length} block(s); height ${r.height}`)
    })

  devchain
    .command('faucet')
    .description('send regtest coins to an address')
    .argument('<address>', 'regtest address')
    .argument('<sats>', 'amount in satoshis')
    .option('--url <url>', 'devchain URL')
    .option('--mine', 'mine a block right away')
    .action(async (address: string, sats: string, opts: { mine?: boolean }, cmd: Command) => {
      const r = await admin(
        cmd,
        'faucet',
        { address, sats: parseSats(sats), mine: opts.mine === true },
        z.object({ txid: z.string(), height: z.number() }),
      )
      emit(cmd, r, () => r.txid)
    })

  devchain
    .command('reorg')
    .description('disconnect the last blocks (their transactions return to the mempool)')
    .argument('<depth>', 'blocks to disconnect')
    .option('--url <url>', 'devchain URL')
    .option('--mine-after <n>', 'blocks to mine on the new branch', '0')
    .action(async (depth: string, opts: { mineAfter: string }, cmd: Command) => {
      const mineAfter = Number(opts.mineAfter)
      if (!Number.isInteger(mineAfter) || mineAfter < 0)
        throw new UsageError('--mine-after must be a whole number')
      const r = await admin(
        cmd,
        'reorg',
        { depth: parsePositiveInt(depth, 'depth'), mineAfter },
        z.object({ disconnected: z.array(z.string()), height: z.number() }),
      )
      emit(cmd, r, () => `disconnected ${r.disconnected.length} block(s); height ${r.height}`)
    })
}
