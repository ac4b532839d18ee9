import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { z } from 'zod'
import { RpibError } from '../errors.js'
import { readIfExists, writePrivateFile } from '../config/paths.js'

export const DAEMON_STATE_FILE = 'daemon.json'

/** `<home>/daemon.json`: how a CLI (or any local client) finds the running daemon. */
export const DaemonStateSchema = z.object({
  pid: z.number().int().positive(),
  apiUrl: z.url(),
  peerId: z.string(),
  startedAt: z.iso.datetime(),
  version: z.string(),
})
export type DaemonState = z.infer<typeof DaemonStateSchema>

export async function writeDaemonState(home: string, state: DaemonState): Promise<void> {
  await writePrivateFile(join(home, DAEMON_STATE_FILE), JSON.stringify(state, null, 2) + '\n')
}

export async function removeDaemonState(home: string, pid = process.pid): Promise<void> {
  const current = await readDaemonState(home).catch(() => undefined)
  if (current == null || current.pid === pid) await rm(join(home, DAEMON_STATE_FILE), { force: true })
}

/** The state of the daemon for `home`, or undefined when none was started (or it stopped cleanly). */
export async function readDaemonState(home: string): Promise<DaemonState | undefined> {
  const path = join(home, DAEMON_STATE_FILE)
  const bytes = await readIfExists(path)
  if (bytes == null) return undefined
  let json: unknown
  try {
    json = JSON.parse(bytes.toString('utf8'))
  } catch {
    json = undefined
  }
  const parsed = DaemonStateSchema.safeParse(json)
  if (!parsed.success) {
    throw new RpibError('ERR_DAEMON_STATE', `${path} is unreadable; if no daemon runs for ${home}, remove it`)
  }
  return parsed.data
}
