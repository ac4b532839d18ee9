import { connect } from 'node:net'
import type { Duplex } from 'node:stream'
import type { Connection, Libp2p, PeerId, Stream } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import { RpibError } from '../errors.js'
import type { Logger } from '../log.js'
import { pipeStream, streamAsDuplex } from './stream-pipe.js'

/** libp2p protocol whose streams carry raw SSH bytes to the provider's embedded SSH server. */
export const SSH_PROTOCOL = '/rpib/ssh/1.0.0'
/** SSH sessions are long-lived and often idle; the SSH layer's own keepalives detect dead peers. */
const SSH_STREAM_INACTIVITY_MS = 24 * 60 * 60 * 1000

export interface SshOverLibp2pInit {
  libp2p: Pick<Libp2p, 'handle' | 'unhandle'>
  /** the embedded SSH server: its loopback address, or its `injectSocket`-style entry point */
  target: { host: string; port: number } | { serve: (stream: Duplex, source: string) => void }
  logger: Logger
  maxInboundStreams?: number
}

export interface SshOverLibp2p {
  start(): Promise<void>
  stop(): Promise<void>
  /** streams currently piped */
  active(): number
}

/**
 * Provider side of `/rpib/ssh/1.0.0`: every inbound stream (direct, hole-punched or relayed) is
 * piped to the local SSH server. The SSH server authenticates the renter; the stream only moves
 * bytes, so a relay in between sees ciphertext only.
 */
export function createSshOverLibp2p(init: SshOverLibp2pInit): SshOverLibp2p {
  const live = new Set<Stream>()
  const onStream = (stream: Stream, connection: Connection): void => {
    stream.inactivityTimeout = SSH_STREAM_INACTIVITY_MS
    const target = init.target
    if ('serve' in target) {
      const duplex = streamAsDuplex(stream)
      live.add(stream)
      stream.addEventListener('close', () => live.delete(stream), { once: true })
      target.serve(duplex, `libp2p ${connection.remotePeer.toString()}`)
      return
    }
    const socket = connect({ port: target.port, host: target.host, noDelay: true })
    live.add(stream)
    socket.once('error', (err) => {
      init.logger('ssh target unreachable: %s', err.message)
      stream.abort(new RpibError('ERR_SSH_TARGET', 'the provider SSH server is not reachable'))
    })
    pipeStream(stream, { readable: socket, writable: socket })
      .catch((err: unknown) => init.logger('ssh stream ended: %s', err instanceof Error ? err.message : err))
      .finally(() => {
        live.delete(stream)
        socket.destroy()
      })
  }
  return {
    async start() {
      await init.libp2p.handle(SSH_PROTOCOL, onStream, {
        runOnLimitedConnection: true,
        maxInboundStreams: init.maxInboundStreams ?? 64,
      })
    },
    async stop() {
      await init.libp2p.unhandle(SSH_PROTOCOL)
      for (const s of live) s.abort(new Error('provider stopping'))
      live.clear()
    },
    active: () => live.size,
  }
}

/** Renter side: opens an SSH stream to a provider (any multiaddr, including `/p2p-circuit` ones). */
export async function dialSsh(
  libp2p: Pick<Libp2p, 'dialProtocol'>,
  peer: Multiaddr | Multiaddr[] | PeerId,
  signal?: AbortSignal,
): Promise<Stream> {
  try {
    const stream = await libp2p.dialProtocol(peer, SSH_PROTOCOL, { runOnLimitedConnection: true, signal })
    stream.inactivityTimeout = SSH_STREAM_INACTIVITY_MS
    return stream
  } catch (err) {
    throw new RpibError(
      'ERR_SSH_DIAL',
      `could not open an SSH stream to ${Array.isArray(peer) ? peer.join(', ') : peer.toString()}: ${err instanceof Error ? err.message : String(err)}`,
      { cause: err },
    )
  }
}
