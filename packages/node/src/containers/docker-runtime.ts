import { createHash } from 'node:crypto'
import Docker from 'dockerode'
import { z } from 'zod'
import { logger as namedLogger, type Logger } from '../log.js'
import {
  DockerUnavailableError,
  ImageNotAvailableError,
  InvalidLeaseSpecError,
  LeaseNotFoundError,
  LeaseNotRunningError,
} from './errors.js'
import { startExec } from './exec.js'
import { installLeaseFirewall, removeLeaseFirewall } from './firewall.js'
import { LEASE_HOME, leaseHostConfig } from './hardening.js'
import {
  LABEL_DISK_MB,
  LABEL_EXPIRES_AT,
  LABEL_LEASE_ID,
  LABEL_NAMESPACE,
  parseLeaseLabels,
} from './labels.js'
import { detectLeaseVolumes, type LeaseVolumes } from './lease-volume.js'
import type {
  ContainerRuntime,
  KnownLease,
  LeaseContainer,
  LeaseContainerState,
  LeaseEndCause,
  LeaseEnded,
  LeaseNetworkInfo,
  LeaseSpec,
  OfferedImage,
  ReconcileReport,
} from './types.js'

/** Lease ids become SSH user names and container name parts. */
export const LeaseIdSchema = z
  .string()
  .regex(/^[a-z0-9][a-z0-9_-]{0,63}$/, 'lease id must be 1-64 lower-case letters, digits, - or _')

export const LeaseSpecSchema = z.strictObject({
  leaseId: LeaseIdSchema,
  image: z
    .string()
    .regex(/^[a-z0-9][a-z0-9._/-]{0,127}(:[A-Za-z0-9._-]{1,64})?$/, 'image must be name[:tag]'),
  expiresAt: z.int().min(0).max(Number.MAX_SAFE_INTEGER),
  resources: z.strictObject({
    cpus: z.int().min(10).max(256_000),
    memoryMb: z.int().min(16).max(1_048_576),
    diskMb: z.int().min(8).max(16_777_216),
    pidsLimit: z.int().min(8).max(1_000_000),
  }),
})

export interface DockerRuntimeOptions {
  docker?: Docker
  /** Docker network for leases, e.g. `rpib-leases`; created by ensureNetwork(). */
  networkName: string
  /** Prefix of container and volume names and value of the namespace label (default: networkName). */
  namespace?: string
  /** Where loop-mounted lease volumes live; without it (or without root) tmpfs volumes are used. */
  stateDir?: string
  /** Install the iptables rules that keep leases off the owner's LAN (default true; needs root). */
  firewall?: boolean
  logger?: Logger
}

export interface DockerRuntime extends ContainerRuntime {
  readonly namespace: string
  /** Which mechanism limits the lease volume on this device ('loop' or 'tmpfs'). */
  volumeMode(): Promise<LeaseVolumes['mode']>
  /** Removes the lease network and its firewall rules (all leases must be gone). */
  removeNetwork(): Promise<void>
}

function isStatus(err: unknown, status: number): boolean {
  return (err as { statusCode?: number } | null)?.statusCode === status
}

function bridgeNameFor(networkName: string): string {
  // Linux interface names are at most 15 bytes
  return `rpib-${createHash('sha256').update(networkName).digest('hex').slice(0, 10)}`
}

/** Keeps the container up between sessions; a renter killing its `sleep` only restarts the loop. */
const KEEPALIVE_CMD = ['/bin/sh', '-c', 'while :; do sleep 86400; done']

export function createDockerRuntime(options: DockerRuntimeOptions): DockerRuntime {
  const docker = options.docker ?? new Docker()
  const log = options.logger ?? namedLogger('rpib:containers')
  const networkName = options.networkName
  const namespace = options.namespace ?? networkName
  if (!namespace.startsWith('rpib-'))
    throw new InvalidLeaseSpecError('runtime namespace must start with rpib-')
  const containerName = (leaseId: string): string => `${namespace}-${leaseId}`
  const volumeName = (leaseId: string): string => `${containerName(leaseId)}-home`

  let network: Promise<LeaseNetworkInfo> | undefined
  let volumes: Promise<LeaseVolumes> | undefined
  let storageOptSupported: boolean | undefined
  const creating = new Map<string, Promise<LeaseContainer>>()

  const getVolumes = (): Promise<LeaseVolumes> =>
    (volumes ??= detectLeaseVolumes(docker, options.stateDir, log))

  async function ping(): Promise<void> {
    try {
      await docker.ping()
    } catch (err) {
      throw new DockerUnavailableError(
        `the Docker engine is not reachable (${(err as Error).message}); start dockerd and check permissions`,
        { cause: err },
      )
    }
  }

  async function setUpNetwork(): Promise<LeaseNetworkInfo> {
    await ping()
    const bridge = bridgeNameFor(networkName)
    let info: Docker.NetworkInspectInfo
    try {
      info = (await docker.getNetwork(networkName).inspect()) as Docker.NetworkInspectInfo
    } catch (err) {
      if (!isStatus(err, 404)) throw err
      try {
        await docker.createNetwork({
          Name: networkName,
          Driver: 'bridge',
          CheckDuplicate: true,
          Internal: false,
          EnableIPv6: false,
          Options: {
            // leases cannot talk to each other over the bridge
            'com.docker.network.bridge.enable_icc': 'false',
            'com.docker.network.bridge.name': bridge,
            'com.docker.network.bridge.enable_ip_masquerade': 'true',
          },
          Labels: { [LABEL_NAMESPACE]: namespace },
        })
      } catch (createErr) {
        if (!isStatus(createErr, 409)) throw createErr
      }
      info = (await docker.getNetwork(networkName).inspect()) as Docker.NetworkInspectInfo
    }
    const ipam = info.IPAM?.Config?.[0]
    const actualBridge = info.Options?.['com.docker.network.bridge.name'] ?? bridge
    if (options.firewall !== false) await installLeaseFirewall(actualBridge, networkName, log)
    return {
      name: networkName,
      bridge: actualBridge,
      subnet: ipam?.Subnet ?? '',
      gateway: ipam?.Gateway ?? '',
    }
  }

  function ensureNetwork(): Promise<LeaseNetworkInfo> {
    network ??= setUpNetwork().catch((err: unknown) => {
      network = undefined
      throw err
    })
    return network
  }

  function toLeaseContainer(info: Docker.ContainerInspectInfo): LeaseContainer | undefined {
    const labels = parseLeaseLabels(info.Config.Labels)
    if (labels == null) return undefined
    return {
      leaseId: labels.leaseId,
      containerId: info.Id,
      containerName: info.Name.replace(/^\//, ''),
      image: info.Config.Image,
      expiresAt: labels.expiresAt,
      state: info.State.Status as LeaseContainerState,
      ipAddress: info.NetworkSettings.Networks[networkName]?.IPAddress || undefined,
      pid: info.State.Running && info.State.Pid > 0 ? info.State.Pid : undefined,
    }
  }

  async function inspectLease(leaseId: string): Promise<LeaseContainer | undefined> {
    try {
      const info = await docker.getContainer(containerName(leaseId)).inspect()
      if (info.Config.Labels?.[LABEL_NAMESPACE] !== namespace) return undefined
      return toLeaseContainer(info)
    } catch (err) {
      if (isStatus(err, 404)) return undefined
      throw err
    }
  }

  async function startIfStopped(lease: LeaseContainer): Promise<LeaseContainer> {
    if (lease.state === 'running') return lease
    await (await getVolumes()).ensureReady(volumeName(lease.leaseId))
    const container = docker.getContainer(lease.containerId)
    if (lease.state === 'paused') await container.unpause()
    else
      await container.start().catch((err: unknown) => (isStatus(err, 304) ? undefined : Promise.reject(err)))
    return (await inspectLease(lease.leaseId)) ?? lease
  }

  async function createContainer(spec: LeaseSpec, withStorageOpt: boolean): Promise<Docker.Container> {
    return docker.createContainer({
      name: containerName(spec.leaseId),
      Image: spec.image,
      Cmd: KEEPALIVE_CMD,
      Hostname: 'lease',
      WorkingDir: LEASE_HOME,
      Labels: {
        [LABEL_LEASE_ID]: spec.leaseId,
        [LABEL_EXPIRES_AT]: String(spec.expiresAt),
        [LABEL_NAMESPACE]: namespace,
        [LABEL_DISK_MB]: String(spec.resources.diskMb),
      },
      HostConfig: leaseHostConfig({
        resources: spec.resources,
        networkName,
        homeVolume: volumeName(spec.leaseId),
        storageOptSize: withStorageOpt,
      }),
    })
  }

  async function provision(spec: LeaseSpec, signal?: AbortSignal): Promise<LeaseContainer> {
    const existing = await inspectLease(spec.leaseId)
    if (existing != null) return startIfStopped(existing)
    signal?.throwIfAborted()
    try {
      await docker.getImage(spec.image).inspect()
    } catch (err) {
      if (isStatus(err, 404)) throw new ImageNotAvailableError(spec.image)
      throw err
    }
    await ensureNetwork()
    await (await getVolumes()).create(volumeName(spec.leaseId), spec.resources.diskMb, namespace)
    signal?.throwIfAborted()
    const isStorageOptError = (err: unknown): boolean => /storage-?opt/i.test((err as Error).message)
    const createAndStart = async (withStorageOpt: boolean): Promise<void> => {
      const container = await createContainer(spec, withStorageOpt)
      try {
        await container.start()
      } catch (err) {
        // never leave a created-but-unstartable container behind (the engine may reject options only here)
        await container.remove({ force: true, v: true }).catch(() => undefined)
        throw err
      }
    }
    try {
      // a root-filesystem quota where the storage driver supports one (overlay2 on xfs+pquota, btrfs, zfs)
      await createAndStart(storageOptSupported !== false)
      if (storageOptSupported === undefined) storageOptSupported = true
    } catch (err) {
      if (isStatus(err, 409)) {
        const raced = await inspectLease(spec.leaseId)
        if (raced != null) return startIfStopped(raced)
      }
      if (!isStorageOptError(err)) throw err
      log('storage driver has no per-container quota; the lease volume alone is size-limited')
      storageOptSupported = false
      await createAndStart(false)
    }
    const created = await inspectLease(spec.leaseId)
    if (created == null) throw new LeaseNotFoundError(spec.leaseId)
    log('lease %s provisioned in %s', spec.leaseId, created.containerName)
    return created
  }

  async function removeLease(
    leaseId: string,
    cause: LeaseEndCause = 'removed',
  ): Promise<LeaseEnded | undefined> {
    const lease = await inspectLease(leaseId)
    if (lease != null) {
      try {
        await docker.getContainer(lease.containerId).remove({ force: true, v: true })
      } catch (err) {
        if (!isStatus(err, 404) && !isStatus(err, 409)) throw err
      }
    }
    await (await getVolumes()).remove(volumeName(leaseId))
    if (lease == null) return undefined
    log('lease %s ended (%s)', leaseId, cause)
    return { leaseId, containerName: lease.containerName, cause, endedAt: Date.now() }
  }

  async function listLeases(): Promise<LeaseContainer[]> {
    await ping()
    const summaries = await docker.listContainers({
      all: true,
      filters: { label: [`${LABEL_NAMESPACE}=${namespace}`] },
    })
    const leases: LeaseContainer[] = []
    for (const summary of summaries) {
      const labels = parseLeaseLabels(summary.Labels)
      if (labels == null) continue
      leases.push({
        leaseId: labels.leaseId,
        containerId: summary.Id,
        containerName: (summary.Names[0] ?? '').replace(/^\//, ''),
        image: summary.Image,
        expiresAt: labels.expiresAt,
        state: summary.State as LeaseContainerState,
        ipAddress: summary.NetworkSettings?.Networks?.[networkName]?.IPAddress || undefined,
        pid: undefined,
      })
    }
    return leases
  }

  return {
    namespace,
    ensureNetwork,
    async createLease(input, signal) {
      const parsed = LeaseSpecSchema.safeParse(input)
      if (!parsed.success)
        throw new InvalidLeaseSpecError(`invalid lease spec: ${parsed.error.issues[0]?.message}`)
      const spec = parsed.data
      // one provisioning per lease id at a time: a concurrent second call waits and gets the same container
      const inFlight = creating.get(spec.leaseId)
      if (inFlight != null) return inFlight
      const job = provision(spec, signal).finally(() => creating.delete(spec.leaseId))
      creating.set(spec.leaseId, job)
      return job
    },
    getLease: inspectLease,
    listLeases,
    removeLease,
    async reconcile(now: number, knownLeases: readonly KnownLease[]): Promise<ReconcileReport> {
      const known = new Map(knownLeases.map((l) => [l.leaseId, l]))
      const report: ReconcileReport = { running: [], restarted: [], ended: [] }
      const leases = await listLeases()
      for (const lease of leases) {
        const knownLease = known.get(lease.leaseId)
        // the caller's expiry wins: extensions move it past the label written at creation
        const expiresAt = knownLease?.expiresAt ?? lease.expiresAt
        const cause: LeaseEndCause | undefined =
          knownLease == null ? 'orphan' : expiresAt <= now ? 'expired' : undefined
        if (cause != null) {
          const ended = await removeLease(lease.leaseId, cause)
          if (ended != null) report.ended.push(ended)
          continue
        }
        if (lease.state !== 'running') {
          await startIfStopped(lease)
          report.restarted.push(lease.leaseId)
        }
        report.running.push(lease.leaseId)
      }
      // volumes left behind by a crash between volume and container creation
      const withContainer = new Set(leases.map((l) => volumeName(l.leaseId)))
      const { Volumes } = await docker.listVolumes({
        filters: { label: [`${LABEL_NAMESPACE}=${namespace}`] },
      })
      for (const volume of Volumes ?? []) {
        if (!withContainer.has(volume.Name)) await (await getVolumes()).remove(volume.Name)
      }
      return report
    },
    async exec(leaseId, execOptions) {
      const lease = await inspectLease(leaseId)
      if (lease == null) throw new LeaseNotFoundError(leaseId)
      // the renter may have stopped their own container (e.g. `kill -9 -1` as root): a new session starts it
      const running =
        lease.state === 'exited' || lease.state === 'created' ? await startIfStopped(lease) : lease
      if (running.state !== 'running') throw new LeaseNotRunningError(leaseId, running.state)
      return startExec(docker.getContainer(running.containerId), execOptions, log)
    },
    async listImages(): Promise<OfferedImage[]> {
      await ping()
      const images = await docker.listImages({ filters: { reference: ['rpib/*'] } })
      const offered: OfferedImage[] = []
      for (const image of images) {
        const info = await docker.getImage(image.Id).inspect()
        for (const ref of image.RepoTags ?? []) {
          if (ref !== '<none>:<none>') offered.push({ ref, sizeBytes: image.Size, arch: info.Architecture })
        }
      }
      return offered.sort((a, b) => a.ref.localeCompare(b.ref))
    },
    async volumeMode() {
      return (await getVolumes()).mode
    },
    async removeNetwork() {
      network = undefined
      try {
        await docker.getNetwork(networkName).remove()
      } catch (err) {
        if (!isStatus(err, 404)) throw err
      }
      if (options.firewall !== false) await removeLeaseFirewall(networkName, log)
    },
  }
}
