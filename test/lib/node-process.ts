/**
 * Spawns a market node as a separate OS process and talks to it over JSON lines on stdin/stdout.
 * The child is packages/node/test/market/node-child.ts (built to dist); every request gets exactly
 * one response, matched by id. Reusable by any cross-process test (end-to-end, benchmarks).
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

export const NODE_CHILD_PATH = fileURLToPath(
  new URL('../../../packages/node/dist/test/market/node-child.js', import.meta.url),
)

export interface NodeProcessOptions {
  dataDir: string
  networkId: string
  /** p2p config (see packages/node/src/p2p/config.ts) */
  p2p?: Record<string, unknown>
  /** market config (see packages/node/src/market/config.ts) */
  market?: Record<string, unknown>
  /** open the listings store with an allow-everything access controller (forgery tests) */
  hostile?: boolean
  /** give up if the node is not ready within this time (ms) */
  startTimeoutMs?: number
  /** extra flags for the child's Node.js (e.g. `--max-semi-space-size=1`) */
  nodeFlags?: string[]
  /** forward the child's stderr to ours (debugging) */
  inheritStderr?: boolean
}

export class NodeProcessError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message)
    this.name = 'NodeProcessError'
  }
}

interface Pending {
  resolve(value: unknown): void
  reject(err: Error): void
}

export class NodeProcess {
  peerId = ''
  addresses: string[] = []
  /** milliseconds from process start of createMarketNode to market ready, as measured by the child */
  readyMs = 0
  private nextId = 1
  private readonly pending = new Map<number, Pending>()
  private exited: Promise<number | null>
  private stderrTail = ''

  private constructor(private readonly child: ChildProcessWithoutNullStreams) {
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)))
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      this.stderrTail = (this.stderrTail + d).slice(-4000)
    })
  }

  /** Starts a node and resolves once it reports ready. */
  static async start(options: NodeProcessOptions): Promise<NodeProcess> {
    const args = [
      ...(options.nodeFlags ?? []),
      NODE_CHILD_PATH,
      options.dataDir,
      options.networkId,
      JSON.stringify({ p2p: options.p2p ?? {}, market: options.market ?? {} }),
    ]
    if (options.hostile === true) args.push('--hostile')
    const child = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'pipe'] })
    if (options.inheritStderr === true) child.stderr.pipe(process.stderr)
    const node = new NodeProcess(child)
    const ready = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(
          new NodeProcessError('ERR_TIMEOUT', `node not ready after ${options.startTimeoutMs ?? 90_000} ms`),
        )
      }, options.startTimeoutMs ?? 90_000)
      void node.exited.then((code) => {
        clearTimeout(timer)
        reject(
          new NodeProcessError('ERR_EXITED', `node exited with ${code} before ready: ${node.stderrTail}`),
        )
      })
      const lines = createInterface({ input: child.stdout })
      lines.on('line', (line) => {
        let message: {
          event?: string
          id?: number
          ok?: boolean
          result?: unknown
          error?: { code: string; message: string }
        }
        try {
          message = JSON.parse(line) as typeof message
        } catch {
          return // not ours (a library printing to stdout)
        }
        if (message.event === 'ready') {
          const ready = message as { peerId: string; addresses: string[]; readyMs: number }
          node.peerId = ready.peerId
          node.addresses = ready.addresses
          node.readyMs = ready.readyMs
          clearTimeout(timer)
          resolve()
          return
        }
        const waiting = message.id == null ? undefined : node.pending.get(message.id)
        if (waiting == null) return
        node.pending.delete(message.id!)
        if (message.ok === true) waiting.resolve(message.result)
        else
          waiting.reject(
            new NodeProcessError(message.error?.code ?? 'ERR_UNKNOWN', message.error?.message ?? ''),
          )
      })
    })
    try {
      await ready
    } catch (err) {
      child.kill('SIGKILL')
      await node.exited
      throw err
    }
    void node.exited.then(() => {
      for (const waiting of node.pending.values()) {
        waiting.reject(new NodeProcessError('ERR_EXITED', `node exited: ${node.stderrTail.slice(-500)}`))
      }
      node.pending.clear()
    })
    return node
  }

  /** Sends one command and resolves with its result (rejects with NodeProcessError on failure). */
  request<T = unknown>(cmd: string, args: Record<string, unknown> = {}): Promise<T> {
    const id = this.nextId++
    return new Promise<T>((resolve, reject) => {
      if (this.child.exitCode != null || this.child.signalCode != null) {
        reject(new NodeProcessError('ERR_EXITED', 'node process is not running'))
        return
      }
      this.pending.set(id, { resolve: resolve as (value: unknown) => void, reject })
      this.child.stdin.write(JSON.stringify({ id, cmd, args }) + '\n')
    })
  }

  /** The last few KB the child wrote to stderr (for failure messages). */
  get stderr(): string {
    return this.stderrTail
  }

  get pid(): number | undefined {
    return this.child.pid
  }

  /** Stops the node cleanly; kills it if it has not exited within `timeoutMs`. */
  async stop(timeoutMs = 15_000): Promise<void> {
    if (this.child.exitCode != null || this.child.signalCode != null) return
    this.child.stdin.end(JSON.stringify({ id: 0, cmd: 'stop' }) + '\n')
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs)
    await this.exited
    clearTimeout(timer)
  }

  /** Kills the process without a clean shutdown (a peer that disappears). */
  async kill(): Promise<void> {
    if (this.child.exitCode != null || this.child.signalCode != null) return
    this.child.kill('SIGKILL')
    await this.exited
  }
}
