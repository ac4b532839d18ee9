import { base32 } from 'multiformats/bases/base32'
import { RpibError } from '../errors.js'

/**
 * Virtual tunnel names are `<label>.<owner>.rpib`, where `<owner>` is the lowercase base32 of the
 * provider's raw 32-byte Ed25519 public key (52 characters, a valid DNS label). The relay accepts a
 * `tcpip-forward` only when `<owner>` equals the key the provider authenticated with, so nobody can
 * register (or hijack) a name that belongs to another provider. Lowercase because OpenSSH lowercases
 * host names before it dials them.
 */
export const TUNNEL_NAME_SUFFIX = 'rpib'

const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$/
const OWNER = /^[a-z2-7]{52}$/

export interface TunnelName {
  /** the lease (or other service) label chosen by the provider */
  label: string
  /** base32 of the owner's Ed25519 public key */
  owner: string
}

export function ownerLabel(ed25519PublicKey: Uint8Array): string {
  if (ed25519PublicKey.length !== 32) throw new RpibError('ERR_TUNNEL_KEY', 'expected a 32-byte Ed25519 key')
  // multiformats prefixes base32 with the multibase code 'b'; the raw alphabet part is what we want
  return base32.baseEncode(ed25519PublicKey)
}

export function isValidLabel(label: string): boolean {
  return LABEL.test(label)
}

/** Builds `<label>.<owner>.rpib` for a provider key. */
export function tunnelName(label: string, ed25519PublicKey: Uint8Array): string {
  if (!isValidLabel(label)) {
    throw new RpibError(
      'ERR_TUNNEL_NAME',
      `invalid tunnel label "${label}": use 1-40 lowercase letters, digits or inner dashes`,
    )
  }
  return `${label}.${ownerLabel(ed25519PublicKey)}.${TUNNEL_NAME_SUFFIX}`
}

/** Parses a tunnel name, or returns undefined when it is not one (case-insensitive, like DNS). */
export function parseTunnelName(name: string): TunnelName | undefined {
  const parts = name.toLowerCase().split('.')
  if (parts.length !== 3 || parts[2] !== TUNNEL_NAME_SUFFIX) return undefined
  const [label, owner] = parts as [string, string, string]
  if (!isValidLabel(label) || !OWNER.test(owner)) return undefined
  return { label, owner }
}

/**
 * Maps an HTTP Host header (`<label>.<owner>.<relay-host>[:port]`) to the tunnel name it addresses,
 * or undefined when the host does not name a tunnel.
 */
export function tunnelNameFromHost(host: string): string | undefined {
  const withoutPort = host.trim().toLowerCase().replace(/:\d+$/, '')
  const parts = withoutPort.split('.')
  if (parts.length < 2) return undefined
  const candidate = `${parts[0]}.${parts[1]}.${TUNNEL_NAME_SUFFIX}`
  return parseTunnelName(candidate) != null ? candidate : undefined
}
