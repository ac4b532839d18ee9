import { join } from 'node:path'
import type { z } from 'zod'
import { RpibError } from '../errors.js'
import { readIfExists } from './paths.js'
import { ConfigSchema, type Config } from './schema.js'

export const CONFIG_FILE = 'config.json'

/** A raw, not yet validated layer of configuration (parsed JSON, env vars or flags). */
export type ConfigLayer = Record<string, unknown>

/** Where a key's value came from, for error messages and `rpib config show`. */
export interface ConfigSource {
  /** e.g. `file /home/me/.local/share/rpib/config.json`, `env RPIB_API_PORT`, `flag --api-port` */
  label: string
  layer: ConfigLayer
  /** per dotted key: a more precise label (the env var or flag that set it) */
  keyLabels?: Map<string, string>
}

export class ConfigError extends RpibError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_CONFIG', message, options)
  }
}

type EnvParser = (raw: string) => unknown

const parseBool: EnvParser = (raw) => {
  const v = raw.trim().toLowerCase()
  if (['1', 'true', 'yes', 'on'].includes(v)) return true
  if (['0', 'false', 'no', 'off', ''].includes(v)) return false
  return raw // left as a string so validation names the variable
}
const parseNumber: EnvParser = (raw) =>
  raw.trim() !== '' && Number.isFinite(Number(raw)) ? Number(raw) : raw
const parseList: EnvParser = (raw) =>
  raw
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
const parseString: EnvParser = (raw) => raw

/** Environment variables the daemon reads, each mapped to one config key (documented in docs/CONFIG.md). */
export const ENV_VARS: ReadonlyArray<{ name: string; key: string; parse: EnvParser }> = [
  { name: 'RPIB_NETWORK', key: 'network', parse: parseString },
  { name: 'RPIB_PROVIDER', key: 'roles.provider', parse: parseBool },
  { name: 'RPIB_RELAY', key: 'roles.relay', parse: parseBool },
  { name: 'RPIB_API_HOST', key: 'api.host', parse: parseString },
  { name: 'RPIB_API_PORT', key: 'api.port', parse: parseNumber },
  { name: 'RPIB_P2P_LISTEN', key: 'p2p.listen', parse: parseList },
  { name: 'RPIB_P2P_ANNOUNCE', key: 'p2p.announce', parse: parseList },
  { name: 'RPIB_BOOTSTRAP', key: 'p2p.bootstrap', parse: parseList },
  { name: 'RPIB_MDNS', key: 'p2p.mdns', parse: parseBool },
  { name: 'RPIB_BITCOIN_BACKEND', key: 'bitcoin.backend', parse: parseString },
  { name: 'RPIB_BITCOIN_NETWORK', key: 'bitcoin.network', parse: parseString },
  { name: 'RPIB_BITCOIN_URL', key: 'bitcoin.url', parse: parseString },
  { name: 'RPIB_BITCOIN_COOKIE_FILE', key: 'bitcoin.cookieFile', parse: parseString },
  { name: 'RPIB_CONFIRMATIONS', key: 'bitcoin.confirmations', parse: parseNumber },
  { name: 'RPIB_PRESENCE_INTERVAL', key: 'presence.intervalSeconds', parse: parseNumber },
  { name: 'RPIB_REPLICATE', key: 'market.replicate', parse: parseString },
  { name: 'RPIB_LOG_LEVEL', key: 'log.level', parse: parseString },
]

/** Sets `a.b.c` in a nested object, creating the intermediate objects. */
export function setKey(target: ConfigLayer, dotted: string, value: unknown): void {
  const parts = dotted.split('.')
  let node = target
  for (const part of parts.slice(0, -1)) {
    const next = node[part]
    if (next == null || typeof next !== 'object' || Array.isArray(next)) node[part] = {}
    node = node[part] as ConfigLayer
  }
  node[parts[parts.length - 1]] = value
}

/** The layer set by `RPIB_*` environment variables (unset and empty variables are ignored). */
export function envLayer(env: NodeJS.ProcessEnv): ConfigSource {
  const layer: ConfigLayer = {}
  const keyLabels = new Map<string, string>()
  for (const v of ENV_VARS) {
    const raw = env[v.name]
    if (raw == null || raw === '') continue
    setKey(layer, v.key, v.parse(raw))
    keyLabels.set(v.key, `env ${v.name}`)
  }
  return { label: 'environment', layer, keyLabels }
}

function isPlainObject(v: unknown): v is ConfigLayer {
  return v != null && typeof v === 'object' && !Array.isArray(v)
}

/** Deep merge: objects merge key by key, everything else (arrays included) is replaced by the later layer. */
export function mergeLayers(...layers: ConfigLayer[]): ConfigLayer {
  const out: ConfigLayer = {}
  for (const layer of layers) {
    for (const [k, v] of Object.entries(layer)) {
      out[k] = isPlainObject(v) && isPlainObject(out[k]) ? mergeLayers(out[k], v) : v
    }
  }
  return out
}

function leafKeys(layer: ConfigLayer, prefix = ''): string[] {
  return Object.entries(layer).flatMap(([k, v]) =>
    isPlainObject(v) && Object.keys(v).length > 0 ? leafKeys(v, `${prefix}${k}.`) : [`${prefix}${k}`],
  )
}

/** The label of the source that set `dotted` (the latest layer wins, as in the merge). */
function sourceOf(dotted: string, sources: ConfigSource[]): string | undefined {
  for (const src of [...sources].reverse()) {
    for (const leaf of leafKeys(src.layer)) {
      if (leaf === dotted || leaf.startsWith(`${dotted}.`) || dotted.startsWith(`${leaf}.`)) {
        return src.keyLabels?.get(leaf) ?? src.label
      }
    }
  }
  return undefined
}

function describeIssue(issue: z.core.$ZodIssue, sources: ConfigSource[]): string {
  let path = issue.path.map(String)
  let message = issue.message
  if (issue.code === 'unrecognized_keys') {
    // name the unknown key itself, not its parent object
    const key = issue.keys[0] ?? ''
    path = [...path, key]
    message = 'is not a known config key (see docs/CONFIG.md or `rpib config schema`)'
  }
  const dotted = path.join('.')
  const from = sourceOf(dotted, sources)
  return `${dotted === '' ? '(top level)' : dotted}${from != null ? ` (from ${from})` : ''}: ${message}`
}

/** Validates merged layers into the effective config, or throws one line naming each bad key and its source. */
export function resolveConfig(sources: ConfigSource[]): Config {
  const merged = mergeLayers(...sources.map((s) => s.layer))
  const parsed = ConfigSchema.safeParse(merged)
  if (parsed.success) return parsed.data
  const details = parsed.error.issues.map((i) => describeIssue(i, sources))
  throw new ConfigError(`invalid config: ${details.join('; ')}`)
}

/** Reads a JSON config file into a layer; a missing file is an empty layer only when `optional`. */
export async function readConfigFile(path: string, optional: boolean): Promise<ConfigSource | undefined> {
  let bytes: Buffer | undefined
  try {
    bytes = await readIfExists(path)
  } catch (err) {
    throw new ConfigError(`cannot read config file ${path}: ${(err as Error).message}`, { cause: err })
  }
  if (bytes == null) {
    if (optional) return undefined
    throw new ConfigError(`config file ${path} does not exist`)
  }
  let json: unknown
  try {
    json = JSON.parse(bytes.toString('utf8'))
  } catch (err) {
    throw new ConfigError(`config file ${path} is not valid JSON: ${(err as Error).message}`, { cause: err })
  }
  if (!isPlainObject(json)) throw new ConfigError(`config file ${path} must hold a JSON object`)
  return { label: `file ${path}`, layer: json }
}

export interface LoadConfigOptions {
  /** the data directory; `<home>/config.json` is read when no explicit file is given */
  home: string
  /** an explicit config file (`--config`, `$RPIB_CONFIG`); it must exist */
  configFile?: string
  env?: NodeJS.ProcessEnv
  /** the highest-precedence layer: command-line flags, already mapped to config keys */
  flags?: ConfigSource
}

export interface LoadedConfig {
  config: Config
  /** the file that was read, if any */
  configFile?: string
  sources: ConfigSource[]
}

/** Loads the effective config: defaults < config file < `RPIB_*` environment < flags. */
export async function loadConfig(opts: LoadConfigOptions): Promise<LoadedConfig> {
  const env = opts.env ?? process.env
  const explicit =
    opts.configFile ?? (env.RPIB_CONFIG != null && env.RPIB_CONFIG !== '' ? env.RPIB_CONFIG : undefined)
  const path = explicit ?? join(opts.home, CONFIG_FILE)
  const file = await readConfigFile(path, explicit == null)
  const sources = [file, envLayer(env), opts.flags].filter((s): s is ConfigSource => s != null)
  return { config: resolveConfig(sources), configFile: file != null ? path : undefined, sources }
}
