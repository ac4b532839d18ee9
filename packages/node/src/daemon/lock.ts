import { link, readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { RpibError } from '../errors.js'

export const LOCK_FILE = 'daemon.lock'

export interface DaemonLock {
  path: string
  release(): Promise<void>
}

/** true when a process with this pid exists (EPERM: it exists but belongs to someone else). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

async function readLockPid(path: string): Promise<number | undefined> {
  try {
    const pid = Number.parseInt((await readFile(path, 'utf8')).trim(), 10)
    return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined
  } catch {
    return undefined
  }
}

/**
 * Takes `<home>/daemon.lock` holding our pid, so a second daemon on the same data directory refuses to
 * start instead of corrupting the stores. The file is created with link(2), which fails atomically when
 * it exists; a lock left by a dead process is taken over.
 */
export async function acquireDaemonLock(home: string, pid = process.pid): Promise<DaemonLock> {
  const path = join(home, LOCK_FILE)
  const tmp = `${path}.${pid}.tmp`
  await writeFile(tmp, `${pid}\n`, { mode: 0o600 })
  try {
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        await link(tmp, path)
        return {
          path,
          release: async () => {
            if ((await readLockPid(path)) === pid) await rm(path, { force: true })
          },
        }
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
      }
      const holder = await readLockPid(path)
      if (holder != null && holder !== pid && processAlive(holder)) {
        throw new RpibError(
          'ERR_DAEMON_RUNNING',
          `another daemon (pid ${holder}) is already running for ${home}; stop it first or use another --home`,
        )
      }
      // stale: its process is gone (or the file is unreadable); remove it and try once more
      await rm(path, { force: true })
    }
    throw new RpibError(
      'ERR_DAEMON_LOCK',
      `could not take the daemon lock ${path}; if no daemon runs for ${home}, remove that file`,
    )
  } finally {
    await rm(tmp, { force: true })
  }
}
