export { probeDevice, dockerArch, sha256Score, diskWriteSpeed } from './probe.js'
export type { ProbeOptions } from './probe.js'
