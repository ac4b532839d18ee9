import { RpibError } from '../errors.js'

export class HostKeyError extends RpibError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_SSH_HOST_KEY', message, options)
  }
}

export class SshServerStateError extends RpibError {
  constructor(message: string) {
    super('ERR_SSH_SERVER_STATE', message)
  }
}
