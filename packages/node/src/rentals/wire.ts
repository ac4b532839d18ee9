import type { Stream } from '@libp2p/interface'
import { lpStream } from '@libp2p/utils'
import { RENT_RPC_MAX_BYTES, TIMEOUTS } from '@rpib/protocol'
import type { z } from 'zod'
import { RpibError } from '../errors.js'

/**
 * One request/response exchange on a `/rpib/rent/1.0.0` stream: length-prefixed UTF-8 JSON frames of at
 * most RENT_RPC_MAX_BYTES, each exchange bounded by TIMEOUTS.streamTimeoutMs.
 */
export function rpcFrames(stream: Stream) {
  const lp = lpStream(stream, { maxDataLength: RENT_RPC_MAX_BYTES })
  return {
    async write(message: unknown, signal?: AbortSignal): Promise<void> {
      await lp.write(new TextEncoder().encode(JSON.stringify(message)), { signal: withTimeout(signal) })
    },
    /** Reads one frame and validates it; malformed input becomes ERR_RPC_MALFORMED, never a crash. */
    async read<S extends z.ZodType>(schema: S, signal?: AbortSignal): Promise<z.infer<S>> {
      let json: unknown
      try {
        const frame = await lp.read({ signal: withTimeout(signal) })
        json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(frame.subarray()))
      } catch (err) {
        if (err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError')) {
          throw new RpibError('ERR_RPC_TIMEOUT', 'the peer did not answer in time', { cause: err })
        }
        throw new RpibError('ERR_RPC_MALFORMED', `unreadable message: ${errorText(err)}`, { cause: err })
      }
      const parsed = schema.safeParse(json)
      if (!parsed.success) {
        throw new RpibError(
          'ERR_RPC_MALFORMED',
          `malformed message: ${parsed.error.issues[0]?.message ?? ''}`,
        )
      }
      return parsed.data
    },
  }
}

function withTimeout(signal: AbortSignal | undefined): AbortSignal {
  const timeout = AbortSignal.timeout(TIMEOUTS.streamTimeoutMs)
  return signal === undefined ? timeout : AbortSignal.any([signal, timeout])
}

export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}
