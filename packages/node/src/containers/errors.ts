import { RpibError } from '../errors.js'

/** Docker is not installed, not running or not reachable with our permissions. */
export class DockerUnavailableError extends RpibError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_DOCKER_UNAVAILABLE', message, options)
  }
}

export class LeaseNotFoundError extends RpibError {
  constructor(leaseId: string) {
    super('ERR_LEASE_NOT_FOUND', `no container for lease ${leaseId} on this device`)
  }
}

export class InvalidLeaseSpecError extends RpibError {
  constructor(message: string) {
    super('ERR_INVALID_LEASE_SPEC', message)
  }
}

export class ImageNotAvailableError extends RpibError {
  constructor(image: string) {
    super(
      'ERR_IMAGE_NOT_AVAILABLE',
      `image ${image} is not on this device; build it with scripts/build-base-image`,
    )
  }
}

export class LeaseNotRunningError extends RpibError {
  constructor(leaseId: string, state: string) {
    super('ERR_LEASE_NOT_RUNNING', `the container of lease ${leaseId} is ${state}, not running`)
  }
}

export class FirewallError extends RpibError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_FIREWALL', message, options)
  }
}

export class LeaseVolumeError extends RpibError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_LEASE_VOLUME', message, options)
  }
}
