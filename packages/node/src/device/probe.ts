import { createHash, randomBytes } from 'node:crypto'
import { open, rm, statfs } from 'node:fs/promises'
import { availableParallelism, cpus, release, totalmem } from 'node:os'
import { join } from 'node:path'
import { readFile } from 'node:fs/promises'
import Docker from 'dockerode'
import { DeviceSpecsSchema, type DeviceSpecs } from '@rpib/protocol'
import { DockerUnavailableError } from '../containers/errors.js'

export interface ProbeOptions {
  docker?: Docker
  /** A directory on the disk leases will use (the data directory); a scratch file is written there. */
  scratchDir: string
  /** How long the CPU test hashes (default 1 s). */
  cpuMs?: number
  /** Upper bound of the disk write test (default 64 MiB or 3 s, whichever comes first). */
  diskBytes?: number
  diskMs?: number
  signal?: AbortSignal
}

/** Docker's platform names: the ones listings and images use. */
export function dockerArch(arch: string = process.arch, armVersion?: string): string {
  switch (arch) {
    case 'x64':
      return 'amd64'
    case 'arm64':
      return 'arm64'
    case 'arm':
      return armVersion === '6' ? 'armel' : 'armhf'
    case 'ia32':
      return 'i386'
    default:
      return (
        arch
          .toLowerCase()
          .replace(/[^a-z0-9_]/g, '')
          .slice(0, 16) || 'unknown'
      )
  }
}

async function cpuModel(): Promise<string> {
  const model = cpus()[0]?.model?.trim()
  if (model != null && model !== '' && model !== 'unknown') return model
  // Raspberry Pi kernels name the board in /proc/cpuinfo instead of the CPU
  const info = await readFile('/proc/cpuinfo', 'utf8').catch(() => '')
  const line = info.split('\n').find((l) => /^(Model|model name|Hardware)\s*:/.test(l))
  return line?.split(':').slice(1).join(':').trim() || 'unknown'
}

/** Single-core SHA-256 throughput in MB/s. */
export function sha256Score(durationMs: number, signal?: AbortSignal): number {
  const block = randomBytes(1024 * 1024)
  const started = performance.now()
  let bytes = 0
  while (performance.now() - started < durationMs) {
    signal?.throwIfAborted()
    createHash('sha256').update(block).digest()
    bytes += block.length
  }
  return Math.round(bytes / 1e6 / ((performance.now() - started) / 1000))
}

/** Sequential write speed in MB/s, flushed to disk (fsync) so the page cache does not flatter it. */
export async function diskWriteSpeed(
  dir: string,
  maxBytes: number,
  maxMs: number,
  signal?: AbortSignal,
): Promise<number> {
  const path = join(dir, `.rpib-probe-${process.pid}.tmp`)
  const chunk = randomBytes(4 * 1024 * 1024)
  const handle = await open(path, 'w', 0o600)
  try {
    const started = performance.now()
    let written = 0
    while (written < maxBytes && performance.now() - started < maxMs) {
      signal?.throwIfAborted()
      await handle.write(chunk)
      written += chunk.length
    }
    await handle.sync()
    return Math.round(written / 1e6 / ((performance.now() - started) / 1000))
  } finally {
    await handle.close()
    await rm(path, { force: true })
  }
}

/** Measures this device for its listing (takes a few seconds; well under 15 s). */
export async function probeDevice(options: ProbeOptions): Promise<DeviceSpecs> {
  const docker = options.docker ?? new Docker()
  let dockerVersion: string
  try {
    dockerVersion = (await docker.version()).Version
  } catch (err) {
    throw new DockerUnavailableError(
      `the Docker engine is not reachable (${(err as Error).message}); a provider needs Docker: start dockerd`,
      { cause: err },
    )
  }
  const fs = await statfs(options.scratchDir)
  const cpuScore = sha256Score(options.cpuMs ?? 1_000, options.signal)
  const diskWriteMBps = await diskWriteSpeed(
    options.scratchDir,
    options.diskBytes ?? 64 * 1024 * 1024,
    options.diskMs ?? 3_000,
    options.signal,
  )
  const armVersion = (process.config.variables as { arm_version?: string }).arm_version
  return DeviceSpecsSchema.parse({
    arch: dockerArch(process.arch, armVersion),
    cpuModel: (await cpuModel()).replace(/\s+/g, ' ').slice(0, 128),
    cpuCores: availableParallelism(),
    cpuScore,
    memoryMb: Math.floor(totalmem() / (1024 * 1024)),
    diskFreeMb: Math.floor((fs.bavail * fs.bsize) / (1024 * 1024)),
    diskWriteMBps,
    dockerVersion: dockerVersion.slice(0, 32),
    kernel: release().slice(0, 64),
  })
}
