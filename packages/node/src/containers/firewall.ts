import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import type { Logger } from '../log.js'
import { FirewallError } from './errors.js'

const execFileAsync = promisify(execFile)

/**
 * Destinations a lease must not reach: the owner's LAN and everything else that is not the public
 * internet (RFC 1918, CGNAT, link-local incl. cloud metadata, multicast). Docker's own bridges live in
 * 172.16.0.0/12, so other containers and networks on the device are covered as well.
 */
export const BLOCKED_DESTINATIONS = [
  '10.0.0.0/8',
  '172.16.0.0/12',
  '192.168.0.0/16',
  '100.64.0.0/10',
  '169.254.0.0/16',
  '224.0.0.0/4',
  '240.0.0.0/4',
] as const

interface Rule {
  chain: 'DOCKER-USER' | 'INPUT'
  args: string[]
}

/**
 * Rules, in the order they must appear at the top of their chain. Forwarded traffic from the lease bridge
 * passes DOCKER-USER (Docker evaluates it before its own accept rules); traffic to the device itself (the
 * bridge gateway, the owner's services on any host address) passes INPUT. Replies to connections the host
 * opened (`ssh -L` forwarding into a lease) are let through by conntrack.
 */
function leaseRules(bridge: string, comment: string): Rule[] {
  const tag = ['-m', 'comment', '--comment', comment]
  const established = ['-m', 'conntrack', '--ctstate', 'ESTABLISHED,RELATED']
  return [
    { chain: 'DOCKER-USER', args: ['-i', bridge, ...established, ...tag, '-j', 'RETURN'] },
    ...BLOCKED_DESTINATIONS.map((cidr): Rule => ({
      chain: 'DOCKER-USER',
      args: ['-i', bridge, '-d', cidr, ...tag, '-j', 'DROP'],
    })),
    { chain: 'INPUT', args: ['-i', bridge, ...established, ...tag, '-j', 'ACCEPT'] },
    { chain: 'INPUT', args: ['-i', bridge, ...tag, '-j', 'DROP'] },
  ]
}

async function iptables(args: string[]): Promise<void> {
  // -w: wait for the xtables lock (dockerd and parallel runtimes edit rules too)
  await execFileAsync('iptables', ['-w', '10', ...args], { timeout: 20_000 })
}

async function ruleExists(rule: Rule): Promise<boolean> {
  try {
    await iptables(['-C', rule.chain, ...rule.args])
    return true
  } catch {
    return false
  }
}

export function firewallComment(networkName: string): string {
  return `rpib:${networkName}`
}

/** Installs the lease bridge's rules once (idempotent: existing rules are left as they are). */
export async function installLeaseFirewall(bridge: string, networkName: string, log: Logger): Promise<void> {
  const rules = leaseRules(bridge, firewallComment(networkName))
  try {
    // DOCKER-USER exists once dockerd has started; create it defensively for older engines
    await iptables(['-N', 'DOCKER-USER']).catch(() => undefined)
    const missing: Rule[] = []
    for (const rule of rules) if (!(await ruleExists(rule))) missing.push(rule)
    if (missing.length === 0) return
    // replace the whole set so the order (established first, then drops) always holds
    await removeLeaseFirewall(networkName, log)
    const positions = { 'DOCKER-USER': 1, INPUT: 1 }
    for (const rule of rules) {
      await iptables(['-I', rule.chain, String(positions[rule.chain]++), ...rule.args])
    }
    log('installed firewall rules for bridge %s', bridge)
  } catch (err) {
    throw new FirewallError(
      `could not install the lease firewall (iptables as root is required): ${(err as Error).message}`,
      { cause: err },
    )
  }
}

/** Removes every rule tagged for this network (used when the network is deleted). */
export async function removeLeaseFirewall(networkName: string, log: Logger): Promise<void> {
  const comment = firewallComment(networkName)
  for (const chain of ['DOCKER-USER', 'INPUT'] as const) {
    let listing: string
    try {
      listing = (await execFileAsync('iptables', ['-w', '10', '-S', chain], { timeout: 20_000 })).stdout
    } catch {
      continue
    }
    for (const line of listing.split('\n')) {
      if (
        !line.startsWith(`-A ${chain} `) ||
        (!line.includes(`"${comment}"`) && !line.includes(` ${comment} `))
      )
        continue
      const spec = splitRuleSpec(line.slice(`-A ${chain} `.length))
      await iptables(['-D', chain, ...spec]).catch((err: Error) =>
        log.error('removing rule: %s', err.message),
      )
    }
  }
}

/** Splits `iptables -S` output into arguments, honouring the double quotes it puts around comments. */
function splitRuleSpec(spec: string): string[] {
  const args: string[] = []
  const re = /"([^"]*)"|(\S+)/g
  for (let m = re.exec(spec); m != null; m = re.exec(spec)) args.push(m[1] ?? m[2] ?? '')
  return args
}
