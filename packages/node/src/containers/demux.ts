import type { Readable, Writable } from 'node:stream'

const HEADER_BYTES = 8

/**
 * Splits Docker's multiplexed attach stream (8-byte header: stream type, 3 zero bytes, big-endian length)
 * into stdout and stderr without copying payloads, honouring back-pressure from either side.
 * Ends both outputs when the source ends.
 */
export function demuxDockerStream(source: Readable, stdout: Writable, stderr: Writable): void {
  let pending: Buffer = Buffer.alloc(0)
  let target: Writable | undefined
  let remaining = 0

  const write = (dest: Writable, chunk: Buffer): void => {
    if (!dest.write(chunk) && !source.isPaused()) {
      source.pause()
      dest.once('drain', () => source.resume())
    }
  }

  // payloads of consecutive frames for the same stream within one read are written as one buffer: a
  // program writing in small pieces otherwise costs one SSH packet (and one encryption) per piece
  let batch: Buffer[] = []
  let batchTarget: Writable | undefined
  const flush = (): void => {
    if (batchTarget == null || batch.length === 0) return
    write(batchTarget, batch.length === 1 ? batch[0]! : Buffer.concat(batch))
    batch = []
  }
  const emit = (dest: Writable, part: Buffer): void => {
    if (dest !== batchTarget) {
      flush()
      batchTarget = dest
    }
    batch.push(part)
  }

  source.on('data', (chunk: Buffer) => {
    let data = pending.length > 0 ? Buffer.concat([pending, chunk]) : chunk
    pending = Buffer.alloc(0)
    while (data.length > 0) {
      if (remaining > 0 && target != null) {
        const part = data.length <= remaining ? data : data.subarray(0, remaining)
        remaining -= part.length
        data = data.subarray(part.length)
        emit(target, part)
        continue
      }
      if (data.length < HEADER_BYTES) {
        pending = Buffer.from(data)
        break
      }
      target = data[0] === 2 ? stderr : stdout
      remaining = data.readUInt32BE(4)
      data = data.subarray(HEADER_BYTES)
    }
    flush()
  })
  source.once('end', () => {
    stdout.end()
    stderr.end()
  })
  source.once('close', () => {
    if (!stdout.writableEnded) stdout.end()
    if (!stderr.writableEnded) stderr.end()
  })
}
