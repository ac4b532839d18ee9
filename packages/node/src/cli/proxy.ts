import type { Command } from 'commander'
import { UsageError } from '../errors.js'
import { globalOptions } from './output.js'

/**
 * `rpib proxy`: the OpenSSH ProxyCommand. Its own command module, so OpenSSH waits only for Node and
 * node:http when it goes through the daemon (a lease id), and for libp2p only when given a multiaddr.
 */
export function registerProxy(program: Command): void {
  program
    .command('proxy')
    .description(
      'OpenSSH ProxyCommand: pipe stdin/stdout to a lease through the running daemon, or to a provider over libp2p',
    )
    .argument(
      '<lease-or-multiaddr>',
      'a lease id (or unique prefix) of this node, or a provider multiaddr /ip4/…/p2p/<provider>',
    )
    .action(async (target: string, _o, cmd: Command) => {
      if (target.startsWith('/')) {
        const { parsePeerMultiaddr, runProxy } = await import('../tunnel/proxy.js')
        await runProxy({ peer: parsePeerMultiaddr(target), stdin: process.stdin, stdout: process.stdout })
        return
      }
      if (!/^[0-9a-f]{6,64}$/.test(target)) {
        throw new UsageError(
          `"${target.slice(0, 80)}" is neither a lease id (hex, see rpib leases) nor a multiaddr (/ip4/…/p2p/<provider>)`,
        )
      }
      const { home } = globalOptions(cmd)
      let offerId = target
      if (!/^[0-9a-f]{64}$/.test(target)) {
        const [{ connectToDaemon }, { resolveLease }] = await Promise.all([
          import('./client.js'),
          import('./lease.js'),
        ])
        offerId = await resolveLease((await connectToDaemon(home)).client, target)
      }
      const { proxyThroughDaemon } = await import('./lease-proxy.js')
      await proxyThroughDaemon({ home, offerId, stdin: process.stdin, stdout: process.stdout })
    })
}
