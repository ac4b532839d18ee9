import { logger as libp2pLogger, type Logger } from '@libp2p/logger'

export type { Logger }

/** A named logger (`rpib:market`, `rpib:ssh` …); enable with `DEBUG=rpib:*`. */
export function logger(name: string): Logger {
  return libp2pLogger(name.startsWith('rpib') ? name : `rpib:${name}`)
}
