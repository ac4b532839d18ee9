import type Docker from 'dockerode'
import type { LeaseResources } from './types.js'

/**
 * Every capability is dropped, then only these are added back: the smallest set with which a Debian
 * userland works as root (apt, dpkg, adduser, chown'ing files). Each one and why is in docs/PROVIDER.md.
 */
export const LEASE_CAPABILITIES = [
  'CHOWN', // dpkg and apt chown unpacked files; renters chown their own files
  'DAC_OVERRIDE', // root reads/writes files it does not own (dpkg database, /var/cache)
  'FOWNER', // chmod/utime on files owned by another user (dpkg, tar -p)
  'SETUID', // apt drops to the _apt user for downloads; su/sudo/runuser inside the lease
  'SETGID', // setgroups() for the same
  'KILL', // signalling processes of other users inside the lease (the SSH bridge ends sessions with it)
] as const

/** The lease's home volume mount point (the renter is root in the container). */
export const LEASE_HOME = '/root'

export interface HostConfigInput {
  resources: LeaseResources
  networkName: string
  homeVolume: string
  storageOptSize: boolean
}

/** Docker HostConfig for a lease container: hardened, limited, no host mounts, no Docker socket. */
export function leaseHostConfig(input: HostConfigInput): Docker.HostConfig {
  const memoryBytes = input.resources.memoryMb * 1024 * 1024
  return {
    NetworkMode: input.networkName,
    CapDrop: ['ALL'],
    CapAdd: [...LEASE_CAPABILITIES],
    SecurityOpt: ['no-new-privileges'],
    Privileged: false,
    // tini as pid 1 reaps the zombies that `docker exec` sessions leave behind
    Init: true,
    NanoCpus: input.resources.cpus * 1_000_000,
    Memory: memoryBytes,
    // no swap beyond the memory limit, so a memory hog is OOM-killed instead of thrashing the device
    MemorySwap: memoryBytes,
    OomKillDisable: false,
    PidsLimit: input.resources.pidsLimit,
    // only the named lease volume: never a bind mount of a host path, never /var/run/docker.sock
    Mounts: [{ Type: 'volume', Source: input.homeVolume, Target: LEASE_HOME, ReadOnly: false }],
    Binds: [],
    Devices: [],
    PublishAllPorts: false,
    IpcMode: 'private',
    RestartPolicy: { Name: 'no' },
    LogConfig: { Type: 'none', Config: {} },
    ...(input.storageOptSize ? { StorageOpt: { size: `${input.resources.diskMb}M` } } : {}),
  }
}
