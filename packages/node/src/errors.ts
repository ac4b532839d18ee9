/**
 * Base class for errors a user or a peer can cause. `code` is stable and machine-readable;
 * `message` is one clear line saying what happened and, where possible, what to do next.
 */
export class RpibError extends Error {
  readonly code: string
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
    this.name = new.target.name
  }
}

export class UsageError extends RpibError {
  constructor(message: string) {
    super('ERR_USAGE', message)
  }
}
