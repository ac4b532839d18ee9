import type { Server } from 'node:net'
import type { Duplex } from 'node:stream'

/** Binds a TCP server; rejects with the bind error (e.g. EADDRINUSE) instead of emitting it. */
export function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => {
      server.off('error', reject)
      resolve()
    })
  })
}

/**
 * ssh2 emits each SSH packet as several small writes (length, payload, MAC). Corking the socket until
 * the end of the current tick sends them, and every other packet of the same tick, as one writev:
 * fewer syscalls and TCP segments on bulk transfers, no added delay for keystrokes.
 */
export function coalesceWrites<T extends Duplex>(socket: T): T {
  const write = socket.write.bind(socket) as (...args: unknown[]) => boolean
  let corked = false
  const uncork = (): void => {
    corked = false
    socket.uncork()
  }
  socket.write = ((...args: unknown[]): boolean => {
    if (!corked) {
      corked = true
      socket.cork()
      process.nextTick(uncork)
    }
    return write(...args)
  }) as T['write']
  return socket
}
