import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createDevchain, type Devchain } from '../../../src/payments/devchain/server.js'
import { createEsploraBackend } from '../../../src/payments/esplora.js'
import type { ChainBackend } from '../../../src/payments/backend.js'
import { createWallet, openWallet, type Wallet } from '../../../src/payments/wallet.js'

/** Cheap scrypt for tests (the production default is 2^15). */
export const TEST_KDF = { N: 1024, r: 8, p: 1 }
export const PASSPHRASE = 'correct horse battery'

export interface PaymentsEnv {
  devchain: Devchain
  backend: ChainBackend
  tmp: string
  newWallet(name: string, mnemonic?: string): Promise<{ wallet: Wallet; mnemonic: string; home: string }>
  close(): Promise<void>
}

/** A devchain on 127.0.0.1 with the real Esplora backend pointed at it, and a temp dir for wallets. */
export async function paymentsEnv(): Promise<PaymentsEnv> {
  const tmp = await mkdtemp(join(tmpdir(), 'rpib-pay-'))
  const devchain = createDevchain({ port: 0 })
  await devchain.start()
  const backend = createEsploraBackend({ url: devchain.url })
  return {
    devchain,
    backend,
    tmp,
    async newWallet(name, mnemonic) {
      const home = join(tmp, name)
      const created = await createWallet({
        home,
        network: 'regtest',
        passphrase: PASSPHRASE,
        kdf: TEST_KDF,
        ...(mnemonic != null ? { mnemonic } : {}),
      })
      const wallet = await openWallet({ home, backend, passphrase: PASSPHRASE })
      return { wallet, mnemonic: created.mnemonic, home }
    },
    async close() {
      await devchain.stop()
      await rm(tmp, { recursive: true, force: true })
    },
  }
}

/** Polls `check` until it returns a value (not undefined) or the deadline passes. */
export async function waitFor<T>(
  check: () => Promise<T | undefined> | T | undefined,
  what: string,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (let i = 0; Date.now() < deadline && i < 10_000; i++) {
    const v = await check()
    if (v !== undefined) return v
    await new Promise((r) => setTimeout(r, 25))
  }
  throw new Error(`timed out waiting for ${what}`)
}
