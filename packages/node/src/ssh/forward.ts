import { spawn } from 'node:child_process'
import { connect } from 'node:net'
import type { Duplex } from 'node:stream'
import type { AcceptConnection, RejectConnection, ServerChannel, TcpipRequestInfo } from 'ssh2'
import type { ContainerRuntime } from '../containers/types.js'
import type { Logger } from '../log.js'

/** Names a renter may use for "inside my lease" in `ssh -L port:HOST:port`. */
const LEASE_LOOPBACK_NAMES = new Set(['localhost', '127.0.0.1', '::1'])
const LEASE_HOST_NAME = 'lease'

export interface ForwardOptions {
  /**
   * The host's busybox (busybox-static, which scripts/build-base-image needs anyway), used to reach
   * services bound to the container's loopback; without it loopback names go to the lease address.
   */
  busyboxPath?: string | undefined
}

/**
 * `direct-tcpip` (`ssh -L`): connects to a port of the lease's own container and nothing else, so the
 * SSH server is never a proxy into the owner's LAN or to another lease.
 * - `localhost`/`127.0.0.1`/`::1`: the container's loopback, via `nsenter --net` into the container's
 *   network namespace running the host's `busybox nc 127.0.0.1 <port>` (fixed arguments; only the
 *   network namespace is entered), so services bound to 127.0.0.1 inside the lease work as with sshd.
 * - `lease` or the container's own address: a TCP connection to its lease-network address.
 */
export async function handleDirectTcpip(
  leaseId: string,
  runtime: Pick<ContainerRuntime, 'getLease'>,
  info: TcpipRequestInfo,
  accept: AcceptConnection<ServerChannel>,
  reject: RejectConnection,
  log: Logger,
  options: ForwardOptions = {},
): Promise<void> {
  const lease = await runtime.getLease(leaseId).catch(() => undefined)
  const port = info.destPort
  const ip = lease?.ipAddress
  const loopback = LEASE_LOOPBACK_NAMES.has(info.destIP)
  const own = info.destIP === LEASE_HOST_NAME || (ip != null && info.destIP === ip)
  if (lease == null || !(loopback || own) || !Number.isInteger(port) || port < 1 || port > 65535) {
    log('lease %s: refused forward to %s:%d', leaseId, info.destIP, port)
    return reject()
  }
  if (loopback && lease.pid != null && options.busyboxPath != null) {
    const child = spawn(
      'nsenter',
      [`--net=/proc/${lease.pid}/ns/net`, '--', options.busyboxPath, 'nc', '127.0.0.1', String(port)],
      {
        stdio: ['pipe', 'pipe', 'ignore'],
      },
    )
    child.once('error', (err) => {
      log('lease %s: loopback forward failed: %s', leaseId, err.message)
      reject()
    })
    child.once('spawn', () => {
      const channel = accept()
      channel.on('error', () => child.kill())
      channel.once('close', () => child.kill())
      child.once('exit', () => channel.end())
      channel.pipe(child.stdin).on('error', () => undefined)
      child.stdout.pipe(channel)
    })
    return
  }
  if (ip == null) return reject()
  const socket = connect({ host: ip, port })
  socket.once('error', (err) => {
    log('lease %s: forward to port %d failed: %s', leaseId, port, err.message)
    reject()
  })
  socket.once('connect', () => {
    socket.removeAllListeners('error')
    join(accept(), socket)
  })
}

function join(channel: ServerChannel, socket: Duplex): void {
  socket.on('error', () => channel.destroy())
  channel.on('error', () => socket.destroy())
  channel.once('close', () => socket.destroy())
  socket.once('close', () => channel.destroy())
  socket.pipe(channel).pipe(socket)
}
