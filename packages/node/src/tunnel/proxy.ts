import type { Readable, Writable } from 'node:stream'
import ssh2 from 'ssh2'
import type { Libp2p } from '@libp2p/interface'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import { RpibError } from '../errors.js'
import { fingerprintOfBlob } from '../relay/ssh-keys.js'
import { createTunnelLibp2p } from './libp2p-node.js'
import { dialSsh } from './ssh-protocol.js'
import { pipeStream, streamAsDuplex } from './stream-pipe.js'

export function parsePeerMultiaddr(text: string): Multiaddr {
  let ma: Multiaddr
  try {
    ma = multiaddr(text)
  } catch {
    throw new RpibError(
      'ERR_PEER_ADDRESS',
      `"${text}" is not a multiaddr; expected e.g. /ip4/1.2.3.4/tcp/4001/p2p/12D3Koo…`,
    )
  }
  if (!ma.toString().includes('/p2p/')) {
    throw new RpibError(
      'ERR_PEER_ADDRESS',
      `multiaddr ${text} has no /p2p/<peer id>; the provider must be named`,
    )
  }
  return ma
}

/** An ephemeral renter-side node: it listens on TCP so DCUtR can punch a direct path. */
export async function createRenterNode(): Promise<Libp2p> {
  return createTunnelLibp2p({ listen: ['/ip4/0.0.0.0/tcp/0'] })
}

/**
 * `rpib proxy`: an OpenSSH ProxyCommand. Opens `/rpib/ssh/1.0.0` to the provider and joins it to
 * stdin/stdout until either side closes.
 */
export async function runProxy(opts: {
  peer: Multiaddr
  stdin: Readable
  stdout: Writable
  signal?: AbortSignal
}): Promise<void> {
  const node = await createRenterNode()
  try {
    const stream = await dialSsh(node, opts.peer, opts.signal)
    await pipeStream(stream, { readable: opts.stdin, writable: opts.stdout }).catch((err: unknown) => {
      throw new RpibError(
        'ERR_SSH_STREAM_LOST',
        `the connection to the provider was lost: ${err instanceof Error ? err.message : String(err)}`,
      )
    })
  } finally {
    await node.stop()
  }
}

/**
 * Learns the provider's full host key over one SSH handshake and checks it against the
 * fingerprint from the listing; returns the `ssh-ed25519 AAAA…` line OpenSSH then pins.
 */
export async function probeHostKey(
  libp2p: Libp2p,
  peer: Multiaddr,
  fingerprint: string,
  signal?: AbortSignal,
): Promise<string> {
  const stream = await dialSsh(libp2p, peer, signal)
  const sock = streamAsDuplex(stream)
  const client = new ssh2.Client()
  let seen: Buffer | undefined
  await new Promise<void>((resolve) => {
    client.on('error', () => resolve())
    client.on('close', () => resolve())
    client.connect({
      sock,
      username: 'probe',
      readyTimeout: 15_000,
      hostVerifier: (key: Buffer) => {
        seen = key
        return false // stop here: we only wanted the key
      },
    })
  })
  client.end()
  sock.destroy()
  if (seen == null)
    throw new RpibError(
      'ERR_HOST_KEY_PROBE',
      'the provider closed the connection before showing its host key',
    )
  const actual = fingerprintOfBlob(seen)
  if (actual !== fingerprint) {
    throw new RpibError(
      'ERR_HOST_KEY_MISMATCH',
      `host key ${actual} does not match the listing's ${fingerprint}: refusing to connect (someone may be intercepting)`,
    )
  }
  const type = seen.subarray(4, 4 + seen.readUInt32BE(0)).toString('latin1')
  return `${type} ${seen.toString('base64')}`
}
