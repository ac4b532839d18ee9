/**
 * Test fixture (run as a process, e.g. inside a network namespace): asks a provider to expose a port of a
 * lease, speaking as the node whose identity lives in `--home`, and prints one JSON line: `{"urls":[…]}`
 * or `{"error":{"code","message"}}`. Usage: expose-child <home> <provider multiaddr> <offer id> <port>
 */
import { multiaddr } from '@multiformats/multiaddr'
import { loadOrCreateIdentity } from '../../src/config/identity.js'
import { requestExpose } from '../../src/daemon/renter-expose.js'
import { RpibError } from '../../src/errors.js'
import { createTunnelLibp2p } from '../../src/tunnel/libp2p-node.js'

const [home, address, offerId, port] = process.argv.slice(2)
if (home == null || address == null || offerId == null || port == null) {
  process.stderr.write('usage: expose-child <home> <provider multiaddr> <offer id> <port>\n')
  process.exit(2)
}
const { privateKey } = await loadOrCreateIdentity(home)
const node = await createTunnelLibp2p({ privateKey, listen: [] })
try {
  const target = multiaddr(address)
  const provider = target.getComponents().findLast((c) => c.name === 'p2p')?.value
  if (provider == null) throw new Error('the provider address must end in /p2p/<peer id>')
  await node.dial(target, { signal: AbortSignal.timeout(20_000) })
  const urls = await requestExpose({ libp2p: node, provider, offerId, port: Number(port) })
  process.stdout.write(JSON.stringify({ urls }) + '\n')
} catch (err) {
  const code = err instanceof RpibError ? err.code : 'ERR_UNEXPECTED'
  process.stdout.write(JSON.stringify({ error: { code, message: (err as Error).message } }) + '\n')
} finally {
  await node.stop()
}
