import { spawn } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Command } from 'commander'
import { RpibError, UsageError } from '../errors.js'
import { fingerprintOfBlob } from '../relay/ssh-keys.js'
import { checkAlias, knownHostsLine, parseHostKeySpec, shellQuote } from '../tunnel/openssh.js'
import { globalOptions } from './output.js'

const CLI_MAIN = fileURLToPath(new URL('./main.js', import.meta.url))
// libp2p takes ~1 s to load: only the --peer form and a host-key probe need it
const proxyModule = () => import('../tunnel/proxy.js')

/** Where `rpib ssh` goes: a lease of this node (through its daemon) or a provider named with --peer. */
type SshTarget =
  | { kind: 'lease'; offerId: string; user: string; fingerprint: string; hostKey?: string; peer?: string }
  | { kind: 'peer'; peer: string; hostKey: string; user: string }

async function sshTarget(
  home: string,
  command: string[],
  opts: { peer?: string; hostKey?: string; user?: string },
): Promise<SshTarget> {
  if (opts.peer != null) {
    if (opts.hostKey == null || opts.user == null) throw new UsageError('--peer needs --host-key and --user')
    return { kind: 'peer', peer: opts.peer, hostKey: opts.hostKey, user: opts.user }
  }
  if (opts.hostKey != null || opts.user != null) throw new UsageError('--host-key and --user go with --peer')
  const lease = command.shift()
  if (lease == null) throw new UsageError('name the lease (rpib ssh <lease> [command…]) or give --peer')
  const [{ connectToDaemon }, { resolveLease }, { getRentalRoute }] = await Promise.all([
    import('./client.js'),
    import('./lease.js'),
    import('../daemon/renter-routes.js'),
  ])
  const { client } = await connectToDaemon(home)
  const offerId = await resolveLease(client, lease)
  const r = await client.call(getRentalRoute, { params: { offerId } })
  if (r.end != null || r.status === 'ended') {
    throw new RpibError('ERR_LEASE_ENDED', `lease ${lease} has ended (${r.endReason ?? 'ended'}); rent again`)
  }
  if (r.ssh == null)
    throw new RpibError('ERR_LEASE_NOT_ACTIVE', `lease ${lease} is not active yet (${r.status})`)
  const peer = r.ssh.endpoints.find((e) => e.startsWith('/'))
  return {
    kind: 'lease',
    offerId,
    user: r.ssh.user,
    fingerprint: r.ssh.hostKeyFingerprint,
    ...(r.ssh.hostPublicKey != null ? { hostKey: r.ssh.hostPublicKey } : {}),
    ...(peer != null ? { peer } : {}),
  }
}

/**
 * The `ssh-ed25519 AAAA…` line to pin: given in full (checked against the fingerprint when there is one),
 * or learnt over one handshake with the provider and checked against the fingerprint.
 */
async function pinnedHostKey(
  hostKey: string | undefined,
  fingerprint: string | undefined,
  peer?: string,
): Promise<string> {
  if (hostKey != null) {
    const spec = parseHostKeySpec(hostKey)
    if (spec.kind === 'key') {
      if (fingerprint != null) {
        const actual = fingerprintOfBlob(Buffer.from(spec.line.split(' ')[1] ?? '', 'base64'))
        if (actual !== fingerprint) {
          throw new RpibError(
            'ERR_HOST_KEY_MISMATCH',
            `the lease's host key ${actual} does not match its fingerprint ${fingerprint}: refusing to connect`,
          )
        }
      }
      return spec.line
    }
    fingerprint = spec.fingerprint
  }
  if (fingerprint == null || peer == null)
    throw new RpibError('ERR_HOST_KEY', 'no host key to pin and no libp2p endpoint to learn it from')
  const { createRenterNode, parsePeerMultiaddr, probeHostKey } = await proxyModule()
  const node = await createRenterNode()
  try {
    return await probeHostKey(node, parsePeerMultiaddr(peer), fingerprint)
  } finally {
    await node.stop()
  }
}

/** `rpib ssh`: OpenSSH to a lease of this node (through its daemon) or to a provider named with --peer. */
export function registerSsh(program: Command): void {
  program
    .command('ssh')
    .description(
      "run OpenSSH to a lease (rpib ssh <lease> [command…]) or to a provider given explicitly with --peer, pinning the provider's host key",
    )
    .option('--peer <multiaddr>', 'provider address (direct or /p2p-circuit); then --host-key and --user')
    .option('--host-key <key>', 'provider host key: "ssh-ed25519 AAAA…" or its SHA256:… fingerprint')
    .option('--user <name>', 'user name (the lease id)')
    .option('-i, --identity <file>', 'private key file for the login')
    .argument('[lease-and-command...]', 'without --peer: the lease id or prefix, then the command to run')
    .action(
      async (
        command: string[],
        opts: { peer?: string; hostKey?: string; user?: string; identity?: string },
        cmd: Command,
      ) => {
        const { home } = globalOptions(cmd)
        const target = await sshTarget(home, command, opts)
        let keyLine: string
        let alias: string
        let proxyTarget: string
        if (target.kind === 'lease') {
          keyLine = await pinnedHostKey(target.hostKey, target.fingerprint, target.peer)
          alias = checkAlias(`rpib-${target.offerId.slice(0, 12)}`)
          // through the daemon, which already holds a connection to the provider
          proxyTarget = target.offerId
        } else {
          const { parsePeerMultiaddr } = await proxyModule()
          const peer = parsePeerMultiaddr(target.peer)
          keyLine = await pinnedHostKey(target.hostKey, undefined, target.peer)
          alias = checkAlias(
            `rpib-${
              peer
                .getComponents()
                .findLast((c) => c.name === 'p2p')
                ?.value?.toLowerCase() ?? 'peer'
            }`,
          )
          proxyTarget = peer.toString()
        }
        const dir = await mkdtemp(join(tmpdir(), 'rpib-ssh-'))
        let code: number
        try {
          const knownHosts = join(dir, 'known_hosts')
          await writeFile(knownHosts, knownHostsLine(alias, keyLine) + '\n', { mode: 0o600 })
          const proxy = [process.execPath, CLI_MAIN, '--home', home, 'proxy', proxyTarget]
            .map(shellQuote)
            .join(' ')
          const args = [
            '-o',
            `ProxyCommand=${proxy}`,
            '-o',
            `HostKeyAlias=${alias}`,
            '-o',
            `UserKnownHostsFile=${knownHosts}`,
            '-o',
            'GlobalKnownHostsFile=/dev/null',
            '-o',
            'StrictHostKeyChecking=yes',
            '-o',
            'ServerAliveInterval=15',
            // Debian's ssh_config turns GSSAPI on: a Kerberos attempt only slows the login down
            '-o',
            'GSSAPIAuthentication=no',
            ...(opts.identity != null ? ['-i', opts.identity, '-o', 'IdentitiesOnly=yes'] : []),
            '-l',
            target.user,
            alias,
            ...command,
          ]
          code = await new Promise<number>((resolve, reject) => {
            const child = spawn('ssh', args, { stdio: 'inherit' })
            child.on('error', (err) =>
              reject(
                new RpibError(
                  'ERR_SSH_CLIENT',
                  `could not run OpenSSH (ssh): ${err.message}; install openssh-client`,
                ),
              ),
            )
            child.on('exit', (c, sig) => resolve(c ?? (sig != null ? 128 : 255)))
          })
        } finally {
          await rm(dir, { recursive: true, force: true })
        }
        // hand OpenSSH's exit status (the remote command's) back to the caller
        process.exit(code)
      },
    )
}
