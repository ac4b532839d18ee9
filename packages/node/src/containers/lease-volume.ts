import { execFile } from 'node:child_process'
import { mkdir, open, readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import type Docker from 'dockerode'
import type { Logger } from '../log.js'
import { LeaseVolumeError } from './errors.js'
import { LABEL_NAMESPACE } from './labels.js'

const execFileAsync = promisify(execFile)

/**
 * How the renter's home volume is size-limited (overlay2 on ext4 has no per-container quota):
 * - 'loop': a sparse file formatted ext4, loop-mounted on the host and handed to Docker as the volume's
 *   directory. Writing past its size fails with ENOSPC; the data survives daemon and device restarts.
 * - 'tmpfs': a size-limited tmpfs volume, for hosts without root/loop devices. Also enforced (ENOSPC), but
 *   memory-backed (it counts toward the lease's memory limit) and lost when the container stops.
 */
export type LeaseVolumeMode = 'loop' | 'tmpfs'

export interface LeaseVolumes {
  readonly mode: LeaseVolumeMode
  /** Creates the volume (idempotent) and returns its Docker name. */
  create(name: string, diskMb: number, namespace: string): Promise<string>
  /** Makes sure a volume created earlier is usable again (re-mounts the loop file after a reboot). */
  ensureReady(name: string): Promise<void>
  remove(name: string): Promise<void>
}

async function run(cmd: string, args: string[]): Promise<void> {
  await execFileAsync(cmd, args, { timeout: 60_000 })
}

async function isMountPoint(dir: string): Promise<boolean> {
  const mounts = await readFile('/proc/self/mountinfo', 'utf8')
  return mounts.split('\n').some((line) => line.split(' ')[4] === dir)
}

async function dockerVolumeExists(docker: Docker, name: string): Promise<boolean> {
  try {
    await docker.getVolume(name).inspect()
    return true
  } catch {
    return false
  }
}

export function createLoopVolumes(docker: Docker, stateDir: string, log: Logger): LeaseVolumes {
  const paths = (name: string): { image: string; dir: string } => ({
    image: join(stateDir, 'volumes', `${name}.img`),
    dir: join(stateDir, 'volumes', name),
  })

  async function mountLoop(name: string): Promise<void> {
    const { image, dir } = paths(name)
    await mkdir(dir, { recursive: true, mode: 0o700 })
    if (await isMountPoint(dir)) return
    await run('mount', ['-o', 'loop,nosuid,nodev', image, dir])
  }

  return {
    mode: 'loop',
    async create(name, diskMb, namespace) {
      const { image, dir } = paths(name)
      try {
        await mkdir(join(stateDir, 'volumes'), { recursive: true, mode: 0o700 })
        const handle = await open(image, 'a', 0o600)
        try {
          const { size } = await handle.stat()
          if (size === 0) {
            await handle.truncate(diskMb * 1024 * 1024)
            // -m 0: no blocks reserved for root (the renter is root, the full size is theirs)
            await run('mkfs.ext4', ['-q', '-F', '-m', '0', '-E', 'lazy_itable_init=1', image])
          }
        } finally {
          await handle.close()
        }
        await mountLoop(name)
        if (!(await dockerVolumeExists(docker, name))) {
          await docker.createVolume({
            Name: name,
            Driver: 'local',
            DriverOpts: { type: 'none', o: 'bind', device: dir },
            Labels: { [LABEL_NAMESPACE]: namespace },
          })
        }
        return name
      } catch (err) {
        throw new LeaseVolumeError(`could not create the lease volume ${name}: ${(err as Error).message}`, {
          cause: err,
        })
      }
    },
    async ensureReady(name) {
      await mountLoop(name)
    },
    async remove(name) {
      const { image, dir } = paths(name)
      await docker
        .getVolume(name)
        .remove()
        .catch(() => undefined)
      if (await isMountPoint(dir)) {
        await run('umount', [dir]).catch((err: Error) => log.error('umount %s: %s', dir, err.message))
      }
      await rm(dir, { recursive: true, force: true })
      await rm(image, { force: true })
    },
  }
}

export function createTmpfsVolumes(docker: Docker): LeaseVolumes {
  return {
    mode: 'tmpfs',
    async create(name, diskMb, namespace) {
      if (!(await dockerVolumeExists(docker, name))) {
        await docker.createVolume({
          Name: name,
          Driver: 'local',
          DriverOpts: { type: 'tmpfs', device: 'tmpfs', o: `size=${diskMb}m,mode=0700` },
          Labels: { [LABEL_NAMESPACE]: namespace },
        })
      }
      return name
    },
    async ensureReady() {},
    async remove(name) {
      await docker
        .getVolume(name)
        .remove()
        .catch(() => undefined)
    },
  }
}

/** Loop volumes when we can mount (root, mkfs.ext4, loop devices); otherwise size-limited tmpfs. */
export async function detectLeaseVolumes(
  docker: Docker,
  stateDir: string | undefined,
  log: Logger,
): Promise<LeaseVolumes> {
  if (stateDir != null && process.getuid?.() === 0) {
    try {
      await run('mkfs.ext4', ['-V'])
      await run('losetup', ['--find'])
      return createLoopVolumes(docker, stateDir, log)
    } catch (err) {
      log('loop volumes unavailable (%s); using size-limited tmpfs volumes', (err as Error).message)
    }
  }
  return createTmpfsVolumes(docker)
}
