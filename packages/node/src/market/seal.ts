/**
 * Sealing: private fields of a public history entry are encrypted to the one counterparty who may read
 * them. The recipient's X25519 key is derived from its Ed25519 peer key (the birational map of RFC 7748
 * §4.1), so no key exchange is needed: anyone who knows a peer id can seal to it, only that peer can open.
 * Box = ephemeral X25519 ⊕ recipient key → HKDF-SHA256 → ChaCha20-Poly1305, with associated data that binds
 * the box to the entry it sits in (so it cannot be copied into another one).
 */
import type { PrivateKey } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  hkdfSync,
  randomBytes,
  type KeyObject,
} from 'node:crypto'
import type { SealedBox } from '@rpib/protocol'
import { RpibError } from '../errors.js'

const FIELD_P = 2n ** 255n - 19n
const HKDF_INFO = Buffer.from('rpib/v1/seal')
const SPKI_X25519 = Buffer.from('302a300506032b656e032100', 'hex')
const PKCS8_X25519 = Buffer.from('302e020100300506032b656e04220420', 'hex')

function leToBigint(bytes: Uint8Array): bigint {
  let n = 0n
  for (let i = bytes.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(bytes[i]!)
  return n
}

function bigintToLe(n: bigint, length: number): Uint8Array {
  const out = new Uint8Array(length)
  for (let i = 0; i < length; i++) {
    out[i] = Number(n & 0xffn)
    n >>= 8n
  }
  return out
}

function modPow(base: bigint, exp: bigint, mod: bigint): bigint {
  let result = 1n
  base %= mod
  while (exp > 0n) {
    if (exp & 1n) result = (result * base) % mod
    base = (base * base) % mod
    exp >>= 1n
  }
  return result
}

/** u = (1 + y) / (1 - y) mod p: the Montgomery u-coordinate of an Ed25519 public key. */
export function ed25519PublicToX25519(edPublic: Uint8Array): Uint8Array {
  if (edPublic.length !== 32) throw new RpibError('ERR_SEAL_KEY', 'an Ed25519 public key has 32 bytes')
  const bytes = Uint8Array.from(edPublic)
  bytes[31]! &= 0x7f // the top bit is the sign of x, not part of y
  const y = leToBigint(bytes)
  if (y >= FIELD_P || y === 1n) throw new RpibError('ERR_SEAL_KEY', 'not a usable Ed25519 public key')
  const u = ((1n + y) * modPow((1n - y + FIELD_P) % FIELD_P, FIELD_P - 2n, FIELD_P)) % FIELD_P
  return bigintToLe(u, 32)
}

/** The X25519 secret that matches `ed25519PublicToX25519` of the same key: SHA-512(seed)[0..32], clamped. */
export function ed25519SeedToX25519(seed: Uint8Array): Uint8Array {
  const h = createHash('sha512').update(seed.subarray(0, 32)).digest()
  const scalar = Uint8Array.from(h.subarray(0, 32))
  scalar[0]! &= 248
  scalar[31]! &= 127
  scalar[31]! |= 64
  return scalar
}

function x25519Public(raw: Uint8Array): KeyObject {
  return createPublicKey({ key: Buffer.concat([SPKI_X25519, raw]), format: 'der', type: 'spki' })
}

function x25519Private(raw: Uint8Array): KeyObject {
  return createPrivateKey({ key: Buffer.concat([PKCS8_X25519, raw]), format: 'der', type: 'pkcs8' })
}

/** Converted recipient keys: the conversion is a modular inversion in pure bigint arithmetic (~1 ms). */
const recipientCache = new Map<string, Uint8Array>()

function recipientX25519(peerId: string): Uint8Array {
  const cached = recipientCache.get(peerId)
  if (cached !== undefined) return cached
  if (recipientCache.size >= 1024) recipientCache.clear()
  const converted = convertRecipient(peerId)
  recipientCache.set(peerId, converted)
  return converted
}

function convertRecipient(peerId: string): Uint8Array {
  let key: Uint8Array | undefined
  try {
    const id = peerIdFromString(peerId)
    if (id.type === 'Ed25519') key = id.publicKey.raw
  } catch {
    // reported below
  }
  if (key === undefined) throw new RpibError('ERR_SEAL_KEY', `${peerId} is not an Ed25519 peer id`)
  return ed25519PublicToX25519(key)
}

function deriveKey(shared: Uint8Array, epk: Uint8Array, rpk: Uint8Array): Buffer {
  return Buffer.from(hkdfSync('sha256', shared, Buffer.concat([epk, rpk]), HKDF_INFO, 32))
}

const b64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64url')
const unb64 = (text: string): Buffer => Buffer.from(text, 'base64url')

/** Encrypts `plaintext` so that only `to` (a peer id) can read it; `context` must be given again to open. */
export function seal(plaintext: Uint8Array, to: string, context: Uint8Array): SealedBox {
  const rpk = recipientX25519(to)
  const ephemeral = generateKeyPairSync('x25519')
  const epk = ephemeral.publicKey.export({ format: 'der', type: 'spki' }).subarray(SPKI_X25519.length)
  const shared = diffieHellman({ privateKey: ephemeral.privateKey, publicKey: x25519Public(rpk) })
  const nonce = randomBytes(12)
  const cipher = createCipheriv('chacha20-poly1305', deriveKey(shared, epk, rpk), nonce, {
    authTagLength: 16,
  })
  cipher.setAAD(context, { plaintextLength: plaintext.length })
  const ct = Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()])
  return { to, epk: b64(epk), nonce: b64(nonce), ct: b64(ct) }
}

/** Decrypts a box sealed to the holder of `privateKey`; any change to the box or the context fails. */
export function open(box: SealedBox, privateKey: PrivateKey, context: Uint8Array): Uint8Array {
  if (privateKey.type !== 'Ed25519') throw new RpibError('ERR_SEAL_KEY', 'only Ed25519 identities can open')
  const secret = ed25519SeedToX25519(privateKey.raw)
  const ownKey = x25519Private(secret)
  // the recipient's public key, from its secret (native, unlike the bigint map of the Ed25519 key)
  const rpk = createPublicKey(ownKey).export({ format: 'der', type: 'spki' }).subarray(SPKI_X25519.length)
  const epk = unb64(box.epk)
  const nonce = unb64(box.nonce)
  const sealed = unb64(box.ct)
  if (epk.length !== 32 || nonce.length !== 12 || sealed.length < 16) {
    throw new RpibError('ERR_SEAL_OPEN', 'the sealed box is malformed')
  }
  try {
    const shared = diffieHellman({ privateKey: ownKey, publicKey: x25519Public(epk) })
    const decipher = createDecipheriv('chacha20-poly1305', deriveKey(shared, epk, rpk), nonce, {
      authTagLength: 16,
    })
    decipher.setAAD(context, { plaintextLength: sealed.length - 16 })
    decipher.setAuthTag(sealed.subarray(sealed.length - 16))
    return Buffer.concat([decipher.update(sealed.subarray(0, sealed.length - 16)), decipher.final()])
  } catch (err) {
    throw new RpibError(
      'ERR_SEAL_OPEN',
      'the sealed fields cannot be opened with this key (not addressed to it, or altered)',
      { cause: err },
    )
  }
}
