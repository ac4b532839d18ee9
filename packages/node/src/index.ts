export { RpibError, UsageError } from './errors.js'
export { logger, type Logger } from './log.js'
export { dataDir, ensurePrivateDir, writePrivateFile, readIfExists } from './config/paths.js'
export { loadOrCreateIdentity, type NodeIdentity } from './config/identity.js'
