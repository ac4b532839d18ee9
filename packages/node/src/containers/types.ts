import type { Duplex, Readable } from 'node:stream'

/** Resources one lease's container gets; derived from the listing's `ContainerLimits`. */
export interface LeaseResources {
  /** Thousandths of a CPU (1000 = one core), as in the protocol's ContainerLimits. */
  cpus: number
  memoryMb: number
  /** Size of the renter's home volume (/root); see docs/PROVIDER.md for how it is enforced. */
  diskMb: number
  pidsLimit: number
}

export interface LeaseSpec {
  leaseId: string
  /** A local image the device offers, e.g. `rpib/base:bookworm`. */
  image: string
  /** Unix milliseconds. */
  expiresAt: number
  resources: LeaseResources
}

export type LeaseContainerState =
  'created' | 'running' | 'paused' | 'restarting' | 'exited' | 'dead' | 'removing'

export interface LeaseContainer {
  leaseId: string
  containerId: string
  containerName: string
  image: string
  expiresAt: number
  state: LeaseContainerState
  /** Address on the lease network (used for `ssh -L` forwarding); undefined while not running. */
  ipAddress: string | undefined
  /** Host pid of the container's init while running (from inspect; undefined in listings). */
  pid: number | undefined
}

export type LeaseEndCause = 'expired' | 'orphan' | 'removed'

export interface LeaseEnded {
  leaseId: string
  containerName: string
  cause: LeaseEndCause
  endedAt: number
}

/** What the caller (the rental flow) knows about a lease; the runtime trusts Docker labels for the rest. */
export interface KnownLease {
  leaseId: string
  expiresAt: number
}

export interface ReconcileReport {
  /** Leases whose container is (now) running. */
  running: string[]
  /** Stopped containers of active leases that were started again. */
  restarted: string[]
  ended: LeaseEnded[]
}

export interface ExecOptions {
  cmd: string[]
  tty: boolean
  env?: Record<string, string>
  /** Initial pty size (only with tty). */
  cols?: number
  rows?: number
  workingDir?: string
}

export interface ExecExit {
  code: number
  /** Signal name without SIG (e.g. 'KILL') when the exit code says the process died of a signal. */
  signal: string | undefined
}

/** A running `docker exec`; streams are raw bytes (demultiplexed when there is no tty). */
export interface LeaseExec {
  /** Write the process's stdin here. */
  stdin: Duplex
  stdout: Readable
  /** Undefined with a tty (stderr is merged into the pty). */
  stderr: Readable | undefined
  resize(cols: number, rows: number): Promise<void>
  /** Resolves once the process has exited and Docker reports its exit code. */
  exited(): Promise<ExecExit>
  /** Ends the process group (HUP, then KILL after a grace period) and closes the streams. */
  kill(): Promise<void>
}

export interface LeaseNetworkInfo {
  name: string
  bridge: string
  subnet: string
  gateway: string
}

export interface OfferedImage {
  ref: string
  sizeBytes: number
  arch: string
}

/** One container per lease, hardened and isolated; see docs/PROVIDER.md. */
export interface ContainerRuntime {
  /** Creates (or checks) the lease bridge network and its firewall rules. */
  ensureNetwork(): Promise<LeaseNetworkInfo>
  /** Idempotent by lease id: a second call returns the existing container and never starts another. */
  createLease(spec: LeaseSpec, signal?: AbortSignal): Promise<LeaseContainer>
  getLease(leaseId: string): Promise<LeaseContainer | undefined>
  listLeases(): Promise<LeaseContainer[]>
  /** Stops and removes the container and its volume; returns undefined when there was none. */
  removeLease(leaseId: string, cause?: LeaseEndCause): Promise<LeaseEnded | undefined>
  /**
   * After a restart: resumes containers of active known leases, removes expired ones and orphans
   * (containers of this runtime whose lease the caller no longer knows).
   */
  reconcile(now: number, knownLeases: readonly KnownLease[]): Promise<ReconcileReport>
  exec(leaseId: string, options: ExecOptions): Promise<LeaseExec>
  /** Local images this device can offer in its listing (`rpib/*`). */
  listImages(): Promise<OfferedImage[]>
}
