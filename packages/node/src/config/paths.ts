import { mkdir, readFile, writeFile, chmod, rename } from 'node:fs/promises'
import { homedir } from 'node:os'
import { join, dirname } from 'node:path'

/**
 * The data directory: `$RPIB_HOME`, else `$XDG_DATA_HOME/rpib`, else `~/.local/share/rpib`.
 * Everything a node persists (identity, stores, wallet, leases) lives below it.
 */
export function dataDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.RPIB_HOME != null && env.RPIB_HOME !== '') return env.RPIB_HOME
  const xdg =
    env.XDG_DATA_HOME != null && env.XDG_DATA_HOME !== ''
      ? env.XDG_DATA_HOME
      : join(homedir(), '.local', 'share')
  return join(xdg, 'rpib')
}

/** Creates a directory (and parents) readable only by the owner. */
export async function ensurePrivateDir(dir: string): Promise<string> {
  await mkdir(dir, { recursive: true, mode: 0o700 })
  return dir
}

let tempCounter = 0

/**
 * Writes a file atomically (temp file + rename) with mode 0600, so a crash never leaves a
 * half-written secret and no other user can read it.
 */
export async function writePrivateFile(path: string, data: string | Uint8Array): Promise<void> {
  await ensurePrivateDir(dirname(path))
  // one temp file per write: two overlapping writes of the same file must not rename each other's
  const tmp = `${path}.${process.pid}.${++tempCounter}.tmp`
  await writeFile(tmp, data, { mode: 0o600 })
  await chmod(tmp, 0o600)
  await rename(tmp, path)
}

/** Reads a file, or returns undefined when it does not exist. */
export async function readIfExists(path: string): Promise<Buffer | undefined> {
  try {
    return await readFile(path)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
}
