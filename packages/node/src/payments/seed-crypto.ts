import {
  createCipheriv,
  createDecipheriv,
  randomBytes,
  scrypt as scryptCb,
  type ScryptOptions,
} from 'node:crypto'
import { z } from 'zod'
import { PaymentError } from './errors.js'

/** scrypt cost: N = 2^15 (≈32 MiB, ≈0.1 s here) by default; tests may lower it. */
export interface KdfParams {
  N: number
  r: number
  p: number
}
export const DEFAULT_KDF: KdfParams = { N: 1 << 15, r: 8, p: 1 }

export const EncryptedBlob = z.object({
  kdf: z.literal('scrypt'),
  N: z
    .number()
    .int()
    .min(1024)
    .max(1 << 20),
  r: z.number().int().min(1).max(32),
  p: z.number().int().min(1).max(16),
  salt: z.string().regex(/^[0-9a-f]{32}$/),
  cipher: z.literal('aes-256-gcm'),
  iv: z.string().regex(/^[0-9a-f]{24}$/),
  tag: z.string().regex(/^[0-9a-f]{32}$/),
  ciphertext: z.string().regex(/^[0-9a-f]+$/),
})
export type EncryptedBlob = z.infer<typeof EncryptedBlob>

function deriveKey(passphrase: string, salt: Buffer, kdf: KdfParams): Promise<Buffer> {
  const options: ScryptOptions = { N: kdf.N, r: kdf.r, p: kdf.p, maxmem: 256 * kdf.N * kdf.r + (1 << 20) }
  return new Promise((resolve, reject) =>
    scryptCb(passphrase.normalize('NFKC'), salt, 32, options, (err, key) =>
      err != null ? reject(err) : resolve(key),
    ),
  )
}

/**
 * Encrypts a secret with a passphrase: scrypt derives the key, AES-256-GCM authenticates both the
 * secret and `associated` (the wallet's public metadata, so it cannot be swapped under the seed).
 */
export async function encryptSecret(
  plaintext: string,
  passphrase: string,
  associated: string,
  kdf: KdfParams = DEFAULT_KDF,
): Promise<EncryptedBlob> {
  const salt = randomBytes(16)
  const iv = randomBytes(12)
  const key = await deriveKey(passphrase, salt, kdf)
  const cipher = createCipheriv('aes-256-gcm', key, iv)
  cipher.setAAD(Buffer.from(associated, 'utf8'))
  const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()])
  return {
    kdf: 'scrypt',
    ...kdf,
    salt: salt.toString('hex'),
    cipher: 'aes-256-gcm',
    iv: iv.toString('hex'),
    tag: cipher.getAuthTag().toString('hex'),
    ciphertext: ciphertext.toString('hex'),
  }
}

/** Decrypts; a wrong passphrase or any tampering fails authentication with ERR_WALLET_PASSPHRASE. */
export async function decryptSecret(
  blob: EncryptedBlob,
  passphrase: string,
  associated: string,
): Promise<string> {
  const key = await deriveKey(passphrase, Buffer.from(blob.salt, 'hex'), blob)
  const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(blob.iv, 'hex'))
  decipher.setAAD(Buffer.from(associated, 'utf8'))
  decipher.setAuthTag(Buffer.from(blob.tag, 'hex'))
  try {
    return Buffer.concat([decipher.update(Buffer.from(blob.ciphertext, 'hex')), decipher.final()]).toString(
      'utf8',
    )
  } catch (err) {
    throw new PaymentError(
      'ERR_WALLET_PASSPHRASE',
      'wrong wallet passphrase (or the wallet file was altered); set RPIB_WALLET_PASSPHRASE to the passphrase used at creation',
      { cause: err },
    )
  }
}
