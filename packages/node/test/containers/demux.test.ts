import assert from 'node:assert/strict'
import { PassThrough } from 'node:stream'
import { describe, it } from 'node:test'
import fc from 'fast-check'
import { demuxDockerStream } from '../../src/containers/demux.js'

function frame(stream: 1 | 2, payload: Buffer): Buffer {
  const header = Buffer.alloc(8)
  header[0] = stream
  header.writeUInt32BE(payload.length, 4)
  return Buffer.concat([header, payload])
}

async function drain(stream: PassThrough): Promise<Buffer> {
  const parts: Buffer[] = []
  for await (const part of stream) parts.push(part as Buffer)
  return Buffer.concat(parts)
}

describe('docker attach stream demultiplexer', () => {
  it('splits any framing, cut at any byte boundaries, into the original stdout and stderr', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.constantFrom<1 | 2>(1, 2), fc.uint8Array({ minLength: 0, maxLength: 300 })), {
          maxLength: 20,
        }),
        fc.array(fc.integer({ min: 1, max: 97 }), { minLength: 1, maxLength: 10 }),
        async (frames, cuts) => {
          const wire = Buffer.concat(frames.map(([s, p]) => frame(s, Buffer.from(p))))
          const source = new PassThrough()
          const stdout = new PassThrough()
          const stderr = new PassThrough()
          demuxDockerStream(source, stdout, stderr)
          const outDone = drain(stdout)
          const errDone = drain(stderr)
          for (let offset = 0, i = 0; offset < wire.length; i++) {
            const size = cuts[i % cuts.length]!
            source.write(wire.subarray(offset, offset + size))
            offset += size
          }
          source.end()
          const expectOut = Buffer.concat(frames.filter(([s]) => s === 1).map(([, p]) => Buffer.from(p)))
          const expectErr = Buffer.concat(frames.filter(([s]) => s === 2).map(([, p]) => Buffer.from(p)))
          assert.deepEqual(await outDone, expectOut)
          assert.deepEqual(await errDone, expectErr)
        },
      ),
      { numRuns: 200 },
    )
  })
})
