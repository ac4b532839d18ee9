import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import { stat } from 'node:fs/promises'
import { join } from 'node:path'
import { RpibError } from '../errors.js'
import { readIfExists, writePrivateFile } from '../config/paths.js'

export const API_TOKEN_FILE = 'api-token'

const TOKEN_PATTERN = /^[A-Za-z0-9_-]{32,256}$/

/** Reads the bearer token (`<home>/api-token`), refusing a file other users could read. */
export async function readApiToken(home: string): Promise<string | undefined> {
  const path = join(home, API_TOKEN_FILE)
  const bytes = await readIfExists(path)
  if (bytes == null) return undefined
  const mode = (await stat(path)).mode & 0o777
  if ((mode & 0o077) !== 0) {
    throw new RpibError(
      'ERR_TOKEN_PERMISSIONS',
      `API token file ${path} is readable by other users (mode ${mode.toString(8)}); run chmod 600 ${path}`,
    )
  }
  const token = bytes.toString('utf8').trim()
  if (!TOKEN_PATTERN.test(token)) {
    throw new RpibError(
      'ERR_TOKEN_CORRUPT',
      `API token file ${path} is malformed; delete it and restart the daemon`,
    )
  }
  return token
}

/** The daemon's bearer token, created (256 random bits, mode 0600) on first start. */
export async function loadOrCreateApiToken(home: string): Promise<string> {
  const existing = await readApiToken(home)
  if (existing != null) return existing
  const token = randomBytes(32).toString('base64url')
  await writePrivateFile(join(home, API_TOKEN_FILE), token + '\n')
  return token
}

/** Constant-time comparison (hashing first makes the lengths equal). */
export function tokensEqual(expected: string, presented: string): boolean {
  const a = createHash('sha256').update(expected).digest()
  const b = createHash('sha256').update(presented).digest()
  return timingSafeEqual(a, b)
}
