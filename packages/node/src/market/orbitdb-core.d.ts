// Minimal types for the parts of @orbitdb/core (untyped JavaScript) that the market uses.
declare module '@orbitdb/core' {
  import type { EventEmitter } from 'node:events'

  export interface OrbitEntry<P = unknown> {
    id: string
    hash: string
    payload: P
    next: string[]
    refs: string[]
    clock: { id: string; time: number }
    identity: string
    key: string
    sig: string
    v: number
  }

  export interface AccessControllerInstance {
    type: string
    address: string
    write: string[]
    canAppend(entry: OrbitEntry): Promise<boolean>
    close?(): Promise<void>
  }

  export interface AccessControllerParams {
    orbitdb: { open: unknown; identity: { id: string }; ipfs: unknown }
    identities: unknown
    address?: string
    name?: string
  }

  export type AccessControllerFactory = (params: AccessControllerParams) => Promise<AccessControllerInstance>

  export interface AccessControllerModule {
    (options?: unknown): AccessControllerFactory
    type: string
  }

  export interface OrbitDatabase {
    address: string
    name: string
    events: EventEmitter
    close(): Promise<void>
    drop(): Promise<void>
    peers: Set<string>
    log: {
      iterator(options?: { amount?: number }): AsyncIterable<OrbitEntry>
      heads(): Promise<OrbitEntry[]>
    }
  }

  export interface DocumentsDatabase extends OrbitDatabase {
    put(doc: Record<string, unknown>): Promise<string>
    del(key: string): Promise<string>
    get(key: string): Promise<{ hash: string; key: string; value: unknown } | undefined>
    iterator(options?: { amount?: number }): AsyncIterable<{ hash: string; key: string; value: unknown }>
  }

  export interface EventsDatabase extends OrbitDatabase {
    add(value: unknown): Promise<string>
    iterator(options?: { amount?: number }): AsyncIterable<{ hash: string; value: unknown }>
  }

  export interface OpenOptions {
    type?: string
    AccessController?: AccessControllerFactory
    Database?: unknown
    sync?: boolean
    referencesCount?: number
  }

  export interface OrbitDB {
    id: string
    identity: { id: string }
    directory: string
    open(address: string, options?: OpenOptions): Promise<OrbitDatabase>
    stop(): Promise<void>
  }

  export function createOrbitDB(options: { ipfs: unknown; id?: string; directory?: string }): Promise<OrbitDB>
  export function useAccessController(module: AccessControllerModule): void
  export function Documents(options?: { indexBy?: string }): unknown
  export function Events(): unknown
}
