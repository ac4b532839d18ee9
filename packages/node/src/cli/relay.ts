import { join } from 'node:path'
import type { Command } from 'commander'
import { z } from 'zod'
import { loadOrCreateIdentity } from '../config/identity.js'
import { ensurePrivateDir, writePrivateFile } from '../config/paths.js'
import { UsageError } from '../errors.js'
import { logger } from '../log.js'
import { tunnelName } from '../relay/names.js'
import { checkAlias, hostBlock, knownHostsLine, parseHostKeySpec, shellQuote } from '../tunnel/openssh.js'
import type { RelayEndpoint, TunnelForward } from '../tunnel/reverse-tunnel.js'
import { emit, globalOptions } from './output.js'

// libp2p and ssh2 take ~1.5 s to load: load them only when one of these commands runs
const relayNodeModule = () => import('../relay/relay-node.js')
const proxyModule = () => import('../tunnel/proxy.js')
const tunnelModules = async () => ({
  ...(await import('../tunnel/libp2p-node.js')),
  ...(await import('../tunnel/ssh-protocol.js')),
  ...(await import('../tunnel/tunnel-set.js')),
  ...(await proxyModule()),
})

const collect = (value: string, previous: string[] = []): string[] => [...previous, value]

const intOption = (name: string, min: number, max: number) => (value: string) => {
  const parsed = z.coerce.number().int().min(min).max(max).safeParse(value)
  if (!parsed.success) throw new UsageError(`--${name} must be a whole number from ${min} to ${max}`)
  return parsed.data
}

const HostPort = z.string().regex(/^[^\s:=]+:\d{1,5}$/)

function parseHostPort(text: string, what: string): { host: string; port: number } {
  if (!HostPort.safeParse(text).success) throw new UsageError(`${what} "${text}" must look like host:port`)
  const i = text.lastIndexOf(':')
  const port = Number(text.slice(i + 1))
  if (port < 1 || port > 65535) throw new UsageError(`${what} "${text}" has an invalid port`)
  return { host: text.slice(0, i), port }
}

/** `host:port[=SHA256:fingerprint]` */
function parseRelayEndpoint(text: string): RelayEndpoint {
  const [addr, fp] = text.split('=', 2) as [string, string | undefined]
  if (fp != null && !/^SHA256:[A-Za-z0-9+/]{43}$/.test(fp)) {
    throw new UsageError(`relay host key "${fp}" must be an OpenSSH SHA256:… fingerprint`)
  }
  return { ...parseHostPort(addr, 'relay'), hostKeyFingerprint: fp }
}

/** Resolves when the process is asked to stop (Ctrl-C / SIGTERM). */
function untilSignal(): Promise<string> {
  return new Promise((resolve) => {
    const on = (sig: string) => () => {
      process.off('SIGINT', onInt)
      process.off('SIGTERM', onTerm)
      resolve(sig)
    }
    const onInt = on('SIGINT')
    const onTerm = on('SIGTERM')
    process.once('SIGINT', onInt)
    process.once('SIGTERM', onTerm)
  })
}

function printLine(json: boolean, data: Record<string, unknown>, human: string): void {
  process.stdout.write((json ? JSON.stringify(data) : human) + '\n')
}

/**
 * Where `rpib ssh` connects: the explicit --peer/--host-key/--user, or (without --peer) the lease named by
 * the first argument, looked up in the renter daemon (its SSH user, libp2p endpoint and pinned host key).
 * Removes the lease argument from `command`.
 */
export function registerRelay(program: Command): void {
  program
    .command('relay')
    .description('run a relay in the foreground: SSH jump server, HTTP ingress and libp2p circuit relay')
    .option('--listen-host <ip>', 'address to listen on', '0.0.0.0')
    .option('--ssh-port <port>', 'SSH jump server port', intOption('ssh-port', 0, 65535), 2222)
    .option('--http-port <port>', 'HTTP ingress port (0 = any)', intOption('http-port', 0, 65535), 8080)
    .option('--p2p-port <port>', 'libp2p TCP port (0 = any)', intOption('p2p-port', 0, 65535), 4001)
    .option('--no-http', 'do not serve HTTP ingress')
    .option('--no-p2p', 'do not run the libp2p circuit relay')
    .option('--announce <multiaddr>', 'public libp2p address to announce (repeatable)', collect)
    .option(
      '--max-tunnels-per-provider <n>',
      'tunnels one provider may hold',
      intOption('max-tunnels-per-provider', 1, 10_000),
    )
    .option(
      '--max-connections-per-source <n>',
      'connections per source IP',
      intOption('max-connections-per-source', 1, 100_000),
    )
    .option(
      '--max-channels-per-connection <n>',
      'channels one renter connection may open',
      intOption('max-channels-per-connection', 1, 10_000),
    )
    .option(
      '--bandwidth <bytesPerSecond>',
      'per-provider bandwidth cap (0 = none)',
      intOption('bandwidth', 0, 2 ** 40),
    )
    .action(
      async (
        opts: {
          listenHost: string
          sshPort: number
          httpPort: number
          p2pPort: number
          http: boolean
          p2p: boolean
          announce?: string[]
          maxTunnelsPerProvider?: number
          maxConnectionsPerSource?: number
          maxChannelsPerConnection?: number
          bandwidth?: number
        },
        cmd: Command,
      ) => {
        const { home, json } = globalOptions(cmd)
        await ensurePrivateDir(home)
        const identity = await loadOrCreateIdentity(home)
        const { startRelayNode } = await relayNodeModule()
        const node = await startRelayNode({
          home,
          identity: identity.privateKey,
          listenHost: opts.listenHost,
          sshPort: opts.sshPort,
          httpPort: opts.http ? opts.httpPort : undefined,
          p2pPort: opts.p2p ? opts.p2pPort : undefined,
          announce: opts.announce,
          limits: {
            maxTunnelsPerProvider: opts.maxTunnelsPerProvider,
            maxConnectionsPerSource: opts.maxConnectionsPerSource,
            maxChannelsPerConnection: opts.maxChannelsPerConnection,
            bytesPerSecondPerProvider: opts.bandwidth,
          },
          logger: logger('rpib:relay'),
        })
        const info = node.info()
        printLine(
          json,
          { event: 'ready', ...info },
          [
            `relay ${info.peerId} ready`,
            `  ssh jump: ${info.ssh.host}:${info.ssh.port}  host key ${info.ssh.hostKeyFingerprint}`,
            `  renters:  ssh -J ${'jump'}@<this-host>:${info.ssh.port} <user>@<lease>.<provider-key>.rpib`,
            info.http != null
              ? `  http:     http://<lease>.<provider-key>.<this-host>:${info.http.port}/`
              : '',
            ...(info.p2p ?? []).map((a) => `  libp2p:   ${a}`),
          ]
            .filter((l) => l !== '')
            .join('\n'),
        )
        await untilSignal()
        const stats = node.stats()
        await node.stop()
        printLine(json, { event: 'stopped', stats }, `relay stopped; counters: ${JSON.stringify(stats)}`)
      },
    )

  program
    .command('tunnel')
    .description('provider side: keep reverse tunnels on relays and serve /rpib/ssh/1.0.0 (foreground)')
    .option('--relay <host:port[=SHA256:fp]>', 'SSH jump relay to hold a tunnel on (repeatable)', collect)
    .option('--want <n>', 'how many relays to hold tunnels on at once', intOption('want', 1, 16), 2)
    .option(
      '--forward <label:port=host:port>',
      'serve <label>.<key>.rpib:<port> from host:port (repeatable)',
      collect,
    )
    .option('--p2p-relay <multiaddr>', 'libp2p relay to take a circuit reservation on (repeatable)', collect)
    .option('--ssh-target <host:port>', 'local SSH server that /rpib/ssh/1.0.0 streams are piped to')
    .option('--p2p-listen <multiaddr>', 'libp2p listen address (repeatable)', collect)
    .action(
      async (
        opts: {
          relay?: string[]
          want: number
          forward?: string[]
          p2pRelay?: string[]
          sshTarget?: string
          p2pListen?: string[]
        },
        cmd: Command,
      ) => {
        const { home, json } = globalOptions(cmd)
        await ensurePrivateDir(home)
        const identity = await loadOrCreateIdentity(home)
        const key = identity.privateKey
        const { createTunnelSet, createTunnelLibp2p, createSshOverLibp2p, parsePeerMultiaddr } =
          await tunnelModules()
        const relays = (opts.relay ?? []).map(parseRelayEndpoint)
        const forwards: TunnelForward[] = (opts.forward ?? []).map((spec) => {
          const m = /^([a-z0-9-]+):(\d{1,5})=(.+)$/.exec(spec)
          if (m == null) throw new UsageError(`--forward "${spec}" must look like lease1:22=127.0.0.1:2222`)
          return {
            name: tunnelName(m[1]!, key.publicKey.raw),
            port: Number(m[2]),
            target: parseHostPort(m[3]!, '--forward target'),
          }
        })
        if (relays.length > 0 && forwards.length === 0)
          throw new UsageError('--relay needs at least one --forward')
        if ((opts.p2pRelay ?? []).length > 0 && opts.sshTarget == null)
          throw new UsageError('--p2p-relay needs --ssh-target')
        const log = logger('rpib:tunnel')
        const set =
          relays.length > 0
            ? createTunnelSet({
                relays,
                want: opts.want,
                identity: key,
                forwards,
                logger: log,
                onRelaysChanged: (up) =>
                  printLine(
                    json,
                    { event: 'relays', up: up.map((r) => `${r.host}:${r.port}`) },
                    `tunnels up on: ${up.map((r) => `${r.host}:${r.port}`).join(', ') || 'none'}`,
                  ),
              })
            : undefined
        let p2p: Awaited<ReturnType<typeof createTunnelLibp2p>> | undefined
        let sshService: ReturnType<typeof createSshOverLibp2p> | undefined
        try {
          if (opts.sshTarget != null) {
            for (const r of opts.p2pRelay ?? []) parsePeerMultiaddr(r)
            p2p = await createTunnelLibp2p({
              privateKey: key,
              listen: [
                ...(opts.p2pListen ?? ['/ip4/0.0.0.0/tcp/0']),
                ...(opts.p2pRelay ?? []).map((r) => `${r}/p2p-circuit`),
              ],
            })
            sshService = createSshOverLibp2p({
              libp2p: p2p,
              target: parseHostPort(opts.sshTarget, '--ssh-target'),
              logger: log,
            })
            await sshService.start()
            if ((opts.p2pRelay ?? []).length > 0) {
              const deadline = Date.now() + 15_000
              while (
                !p2p.getMultiaddrs().some((a) => a.toString().includes('/p2p-circuit')) &&
                Date.now() < deadline
              ) {
                await new Promise((r) => setTimeout(r, 50))
              }
            }
          }
          set?.start()
          printLine(
            json,
            {
              event: 'ready',
              peerId: identity.peerId.toString(),
              names: forwards.map((f) => `${f.name}:${f.port}`),
              p2p: p2p?.getMultiaddrs().map((a) => a.toString()) ?? [],
            },
            [
              `provider ${identity.peerId.toString()}`,
              ...forwards.map(
                (f) =>
                  `  tunnel name ${f.name}:${f.port} -> ${'host' in f.target ? `${f.target.host}:${f.target.port}` : 'server'}`,
              ),
              ...(p2p?.getMultiaddrs().map((a) => `  libp2p ${a.toString()}`) ?? []),
            ].join('\n'),
          )
          await untilSignal()
        } finally {
          await set?.stop()
          await sshService?.stop()
          await p2p?.stop()
        }
      },
    )

  program
    .command('ssh-config')
    .description('print an ~/.ssh/config Host block for a provider (and store its pinned host key)')
    .requiredOption('--alias <name>', 'Host alias to use with ssh, e.g. my-pi')
    .requiredOption('--host-key <key>', 'provider host key: "ssh-ed25519 AAAA…" (or SHA256:… with --peer)')
    .requiredOption('--user <name>', 'user name (the lease id)')
    .option('--peer <multiaddr>', 'reach the provider over libp2p with rpib proxy')
    .option('--jump <user@relay:port>', 'reach the provider through an SSH jump relay')
    .option('--name <tunnel-name>', 'the tunnel name on the relay (<lease>.<key>.rpib), with --jump')
    .option('-i, --identity <file>', 'private key file for the login')
    .action(
      async (
        opts: {
          alias: string
          hostKey: string
          user: string
          peer?: string
          jump?: string
          name?: string
          identity?: string
        },
        cmd: Command,
      ) => {
        const { home } = globalOptions(cmd)
        const { createRenterNode, parsePeerMultiaddr, probeHostKey } = await proxyModule()
        const alias = checkAlias(opts.alias)
        if ((opts.peer == null) === (opts.jump == null))
          throw new UsageError('give exactly one of --peer or --jump')
        if (opts.jump != null && (opts.name == null || !/^[a-z0-9.-]+\.rpib$/.test(opts.name))) {
          throw new UsageError('--jump needs --name <lease>.<provider-key>.rpib')
        }
        if (opts.jump != null && !/^[A-Za-z0-9._-]+@[^\s:]+:\d{1,5}$/.test(opts.jump)) {
          throw new UsageError('--jump must look like jump@relay.example.org:2222')
        }
        const spec = parseHostKeySpec(opts.hostKey)
        let keyLine: string
        if (spec.kind === 'key') keyLine = spec.line
        else if (opts.peer != null) {
          const node = await createRenterNode()
          try {
            keyLine = await probeHostKey(node, parsePeerMultiaddr(opts.peer), spec.fingerprint)
          } finally {
            await node.stop()
          }
        } else
          throw new UsageError('with --jump give the full host key ("ssh-ed25519 AAAA…"), not a fingerprint')
        const knownHostsFile = join(home, 'ssh', `known_hosts.${alias}`)
        await writePrivateFile(knownHostsFile, knownHostsLine(alias, keyLine) + '\n')
        const proxyCommand =
          opts.peer != null
            ? ['rpib', '--home', home, 'proxy', parsePeerMultiaddr(opts.peer).toString()]
                .map(shellQuote)
                .join(' ')
            : undefined
        const block = hostBlock({
          alias,
          user: opts.user,
          knownHostsFile,
          proxyCommand,
          jump: opts.jump != null ? { spec: opts.jump, hostName: opts.name! } : undefined,
          identityFile: opts.identity,
        })
        emit(cmd, { alias, knownHostsFile, hostKey: keyLine, config: block }, () => block.trimEnd())
      },
    )
}
