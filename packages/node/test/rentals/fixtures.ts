import type { ListingBody } from '@rpib/protocol'

/** A valid listing body for rentals tests; override what a test is about. */
export function testListingBody(overrides: Partial<ListingBody> = {}): ListingBody {
  return {
    deviceId: 'box',
    version: 1,
    status: 'listed',
    name: 'Test box',
    description: 'a test device',
    specs: {
      arch: 'amd64',
      cpuModel: 'test',
      cpuCores: 2,
      cpuScore: 100,
      memoryMb: 1024,
      diskFreeMb: 1000,
      diskWriteMBps: 100,
      dockerVersion: '20.10.24',
      kernel: '6.1',
    },
    satsPerHour: 10_000,
    minHours: 1,
    maxHours: 4,
    slots: 2,
    images: ['rpib/busybox:latest'],
    limits: { cpus: 500, memoryMb: 64, diskMb: 16, pidsLimit: 64 },
    sshHostKey: 'SHA256:' + 'B'.repeat(43),
    relays: [],
    bitcoinNetwork: 'regtest',
    ...overrides,
  }
}

/** A syntactically valid OpenSSH public key line (for requests that never log in). */
export const TEST_SSH_KEY =
  'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHVhZ2VudGVzdGtleWZvcnJwaWJyb2tlcm5lZ290aWF0aW9u renter@test'
