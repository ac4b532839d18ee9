import { RpibError } from '../errors.js'
import { fingerprintOfBlob, parsePublicKeyLine } from '../relay/ssh-keys.js'

/** A host key as given by the user or a listing: the full key line, or only its fingerprint. */
export type HostKeySpec =
  { kind: 'key'; line: string; fingerprint: string } | { kind: 'fingerprint'; fingerprint: string }

export function parseHostKeySpec(text: string): HostKeySpec {
  const t = text.trim()
  if (/^SHA256:[A-Za-z0-9+/]{43}$/.test(t)) return { kind: 'fingerprint', fingerprint: t }
  const blob = parsePublicKeyLine(t)
  const [type, body] = t.split(/\s+/)
  return { kind: 'key', line: `${type} ${body}`, fingerprint: fingerprintOfBlob(blob) }
}

/** A safe OpenSSH host alias / known_hosts name: lowercase letters, digits, dots and dashes. */
export function checkAlias(alias: string): string {
  if (!/^[a-z0-9][a-z0-9.-]{0,200}$/.test(alias)) {
    throw new RpibError(
      'ERR_USAGE',
      `host alias "${alias}" may use only lowercase letters, digits, dots and dashes`,
    )
  }
  return alias
}

export function knownHostsLine(alias: string, keyLine: string): string {
  return `${alias} ${keyLine}`
}

/** Quotes one argument for the shell OpenSSH runs a ProxyCommand with. */
export function shellQuote(arg: string): string {
  return /^[A-Za-z0-9_./:@%+=-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`
}

export interface HostBlockOptions {
  alias: string
  user: string
  knownHostsFile: string
  /** ProxyCommand (libp2p path) … */
  proxyCommand?: string
  /** … or ProxyJump (SSH jump relay path) with the tunnel name as HostName */
  jump?: { spec: string; hostName: string }
  identityFile?: string
}

/** An `~/.ssh/config` Host block that pins the provider's host key. */
export function hostBlock(o: HostBlockOptions): string {
  const lines = [`Host ${o.alias}`]
  if (o.jump != null) {
    lines.push(`  HostName ${o.jump.hostName}`, `  ProxyJump ${o.jump.spec}`)
  } else if (o.proxyCommand != null) {
    lines.push(`  ProxyCommand ${o.proxyCommand}`)
  }
  lines.push(
    `  User ${o.user}`,
    `  HostKeyAlias ${o.alias}`,
    `  UserKnownHostsFile ${o.knownHostsFile}`,
    `  StrictHostKeyChecking yes`,
    `  ServerAliveInterval 15`,
  )
  if (o.identityFile != null) lines.push(`  IdentityFile ${o.identityFile}`, '  IdentitiesOnly yes')
  return lines.join('\n') + '\n'
}
