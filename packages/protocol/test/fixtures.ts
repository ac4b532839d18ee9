/** Valid sample bodies of every record type, shared by the protocol tests. */
import { generateKeyPair, generateKeyPairFromSeed } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { PrivateKey } from '@libp2p/interface'
import type { BodyOf, RecordType } from '../src/index.js'

export const NOW = Date.UTC(2026, 10, 25, 12, 0, 0)
export const ID_A = 'a'.repeat(64)
export const ID_B = '0123456789abcdef'.repeat(4)
export const FINGERPRINT = 'SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s'
export const SSH_KEY =
  'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl renter@laptop'
export const REGTEST_ADDRESS = 'bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080'

/** A deterministic Ed25519 key (seeded), so failures reproduce. */
export async function testKey(seedByte = 1): Promise<PrivateKey> {
  return generateKeyPairFromSeed('Ed25519', new Uint8Array(32).fill(seedByte))
}

export async function randomKey(): Promise<PrivateKey> {
  return generateKeyPair('Ed25519')
}

export async function peerIdOf(key: PrivateKey): Promise<string> {
  return peerIdFromPrivateKey(key).toString()
}

export function sampleBodies(providerPeerId: string, renterPeerId: string): { [T in RecordType]: BodyOf<T> } {
  const key = `${providerPeerId}/pi-kitchen`
  const invoice = {
    network: 'regtest' as const,
    address: REGTEST_ADDRESS,
    amountSats: 2400,
    expiresAt: NOW + 1_800_000,
  }
  return {
    listing: {
      deviceId: 'pi-kitchen',
      version: 3,
      status: 'listed',
      name: 'Raspberry Pi 4 in the kitchen',
      description: 'Quiet 4 GB Pi on fibre.\nGood for small web services.',
      specs: {
        arch: 'arm64',
        cpuModel: 'Cortex-A72',
        cpuCores: 4,
        cpuScore: 180,
        memoryMb: 3792,
        diskFreeMb: 48_213,
        diskWriteMBps: 42,
        dockerVersion: '20.10.24+dfsg1',
        kernel: '6.1.0-rpi7-rpi-v8',
      },
      satsPerHour: 100,
      minHours: 1,
      maxHours: 720,
      slots: 2,
      images: ['rpib/debian:bookworm', 'rpib/busybox:1.36'],
      limits: { cpus: 1500, memoryMb: 1024, diskMb: 8192, pidsLimit: 256 },
      sshHostKey: FINGERPRINT,
      relays: [
        '/ip4/203.0.113.7/tcp/4001/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA',
        'ssh://relay.example.org:2222',
      ],
      bitcoinNetwork: 'regtest',
    },
    presence: { listings: ['pi-kitchen'], seq: 42, load: { activeLeases: 1, freeSlots: 1 } },
    'rent-request': {
      listingKey: key,
      listingVersion: 3,
      durationSeconds: 24 * 3600,
      image: 'rpib/debian:bookworm',
      sshPublicKeys: [SSH_KEY],
      refundAddress: REGTEST_ADDRESS,
    },
    offer: {
      requestId: ID_A,
      listingKey: key,
      renter: renterPeerId,
      durationSeconds: 24 * 3600,
      priceSats: 2400,
      invoice,
    },
    lease: {
      leaseId: ID_B,
      offerId: ID_A,
      renter: renterPeerId,
      listingKey: key,
      startsAt: NOW,
      expiresAt: NOW + 24 * 3_600_000,
      ssh: { user: 'root', endpoints: ['ssh://relay.example.org:2222'], hostKeyFingerprint: FINGERPRINT },
    },
    'lease-extension': {
      leaseId: ID_B,
      addSeconds: 3600,
      priceSats: 100,
      invoice: { ...invoice, amountSats: 100 },
    },
    'lease-end': {
      leaseId: ID_B,
      reason: 'cancelled',
      endedAt: NOW + 3_600_000,
      servedSeconds: 3600,
      refundDueSats: 2300,
    },
    refund: { leaseId: ID_B, amountSats: 2300, address: REGTEST_ADDRESS, txid: 'f'.repeat(64) },
    history: {
      kind: 'refund',
      leaseId: ID_B,
      listingKey: key,
      provider: providerPeerId,
      renter: renterPeerId,
      amountSats: 2300,
      seq: 0,
      sealed: { to: renterPeerId, epk: 'A'.repeat(43), nonce: 'B'.repeat(16), ct: 'C'.repeat(40) },
    },
  }
}
