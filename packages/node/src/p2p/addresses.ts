/** Ordering a node's libp2p addresses for peers anywhere (leases and presence beats name the best first). */

const PRIVATE_V4 = [
  /^10\./,
  /^127\./,
  /^192\.168\./,
  /^172\.(1[6-9]|2\d|3[01])\./,
  /^100\.(6[4-9]|[7-9]\d|1[01]\d|12[0-7])\./,
  /^169\.254\./,
]

/** 0: a public direct address, 1: through a relay, 2: a private (LAN) address, 3: loopback. */
function reach(address: string): number {
  if (address.includes('/p2p-circuit')) return 1
  const v4 = /^\/ip4\/([0-9.]+)\//.exec(address)?.[1]
  if (v4 != null) return v4.startsWith('127.') ? 3 : PRIVATE_V4.some((re) => re.test(v4)) ? 2 : 0
  const v6 = /^\/ip6\/([0-9a-fA-F:.]+)\//.exec(address)?.[1]?.toLowerCase()
  if (v6 != null) return v6 === '::1' ? 3 : /^(fc|fd|fe8|fe9|fea|feb)/.test(v6) ? 2 : 0
  return 2
}

/**
 * The libp2p addresses a lease names for SSH, best first for a renter anywhere: public direct addresses,
 * then relay circuits, then LAN and loopback addresses (which only a renter next door can use). A lease
 * carries at most `max` of them.
 */
export function rankEndpointsForRenters(addresses: string[], max = 8): string[] {
  return addresses
    .map((address, i) => ({ address, i, rank: reach(address) }))
    .sort((a, b) => a.rank - b.rank || a.i - b.i)
    .slice(0, max)
    .map((e) => e.address)
}
