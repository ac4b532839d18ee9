import { Duplex, type Readable, type Writable } from 'node:stream'
import type { Stream } from '@libp2p/interface'

export interface PipeCounters {
  /** bytes from the libp2p stream to the local side */
  fromStream?: (n: number) => void
  /** bytes from the local side to the libp2p stream */
  toStream?: (n: number) => void
}

/**
 * Joins a libp2p stream to a local byte stream (a socket to the SSH server, or stdin/stdout for
 * `rpib proxy`) with back-pressure both ways and half-close passed on. Resolves when the libp2p
 * stream is closed after the remote finished; rejects when it was reset, aborted or cut off.
 */
export function pipeStream(
  stream: Stream,
  local: { readable: Readable; writable: Writable },
  counters: PipeCounters = {},
): Promise<void> {
  const { readable, writable } = local
  return new Promise((resolve, reject) => {
    stream.addEventListener('message', (evt) => {
      const bytes = evt.data instanceof Uint8Array ? evt.data : evt.data.subarray()
      counters.fromStream?.(bytes.length)
      if (!writable.writable) return
      if (!writable.write(bytes)) {
        stream.pause()
        writable.once('drain', () => stream.resume())
      }
    })
    let remoteFinished = false
    stream.addEventListener('remoteCloseWrite', () => {
      remoteFinished = true
      if (writable.writable) writable.end()
    })

    const onData = (chunk: Buffer): void => {
      counters.toStream?.(chunk.length)
      if (stream.status !== 'open') return
      try {
        if (!stream.send(chunk)) {
          readable.pause()
          stream.onDrain().then(
            () => readable.resume(),
            () => readable.destroy(),
          )
        }
      } catch {
        readable.destroy()
      }
    }
    readable.on('data', onData)
    readable.once('end', () => {
      stream.close().catch(() => {})
    })
    const onLocalClose = (): void => {
      if (stream.status === 'open') stream.close().catch(() => stream.abort(new Error('local side closed')))
    }
    readable.once('close', onLocalClose)
    readable.on('error', () => {})
    writable.on('error', () => {})

    stream.addEventListener(
      'close',
      (evt) => {
        readable.off('data', onData)
        // a close without the remote ever finishing its side means the path died (relay gone, reset)
        const lost =
          evt.error ??
          (remoteFinished ? undefined : new Error('the stream closed before the remote side finished'))
        if (lost != null) {
          if (!writable.destroyed) writable.destroy()
          if (!readable.destroyed) readable.destroy()
          reject(lost)
        } else {
          if (writable.writable) writable.end()
          resolve()
        }
      },
      { once: true },
    )
  })
}

/** A Node duplex over a libp2p stream, for ssh2's `sock` option. */
export function streamAsDuplex(stream: Stream): Duplex {
  const duplex = new Duplex({
    read() {
      stream.resume()
    },
    write(chunk: Buffer, _enc, cb) {
      try {
        if (stream.send(chunk)) cb()
        else stream.onDrain().then(() => cb(), cb)
      } catch (err) {
        cb(err as Error)
      }
    },
    final(cb) {
      stream.close().then(() => cb(), cb)
    },
    destroy(err, cb) {
      if (stream.status === 'open') stream.abort(err ?? new Error('closed'))
      cb(err)
    },
  })
  stream.addEventListener('message', (evt) => {
    if (!duplex.push(evt.data instanceof Uint8Array ? evt.data : evt.data.subarray())) stream.pause()
  })
  stream.addEventListener('remoteCloseWrite', () => duplex.push(null))
  stream.addEventListener('close', () => duplex.destroy())
  return duplex
}
