import { join } from 'node:path'
import { z } from 'zod'
import { readIfExists, writePrivateFile } from '../config/paths.js'
import { PaymentError } from './errors.js'
import { BitcoinNetworkName } from './networks.js'
import { EncryptedBlob } from './seed-crypto.js'

export const WALLET_DIR = 'wallet'
export const WALLET_FILE = 'wallet.json'

/** The wallet file: public metadata in clear, the mnemonic sealed (absent for watch-only wallets). */
export const WalletFile = z.object({
  version: z.literal(1),
  network: BitcoinNetworkName,
  kind: z.enum(['hd', 'watch-only']),
  /** SLIP-132 account public key (zpub/vpub) */
  accountPub: z.string(),
  accountPath: z.string(),
  /** BIP32 master key fingerprint (hex), for PSBT derivation paths; 00000000 when unknown */
  masterFingerprint: z.string().regex(/^[0-9a-f]{8}$/),
  gapLimit: z.number().int().min(1).max(1000),
  /** receive addresses handed out so far (invoices, `wallet address`) */
  nextReceiveIndex: z.number().int().min(0),
  sealedSeed: EncryptedBlob.optional(),
})
export type WalletFile = z.infer<typeof WalletFile>

export function walletPath(home: string): string {
  return join(home, WALLET_DIR, WALLET_FILE)
}

/** The data the seed encryption authenticates along with the mnemonic. */
export function sealedAssociatedData(f: Pick<WalletFile, 'network' | 'accountPub'>): string {
  return `rpib-wallet-v1|${f.network}|${f.accountPub}`
}

export async function readWalletFile(home: string): Promise<WalletFile | undefined> {
  const path = walletPath(home)
  const raw = await readIfExists(path)
  if (raw == null) return undefined
  let json: unknown
  try {
    json = JSON.parse(raw.toString('utf8'))
  } catch (err) {
    throw new PaymentError(
      'ERR_WALLET_CORRUPT',
      `wallet file ${path} is not JSON; restore it from your recovery phrase`,
      { cause: err },
    )
  }
  const r = WalletFile.safeParse(json)
  if (!r.success)
    throw new PaymentError(
      'ERR_WALLET_CORRUPT',
      `wallet file ${path} is damaged; restore it from your recovery phrase`,
    )
  return r.data
}

export async function writeWalletFile(home: string, file: WalletFile): Promise<void> {
  await writePrivateFile(walletPath(home), JSON.stringify(file, null, 2) + '\n')
}
