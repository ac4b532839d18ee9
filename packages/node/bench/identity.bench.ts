import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { loadOrCreateIdentity } from '../src/config/identity.js'
import { printTable } from './table.js'

// Baseline bench: identity create/load cost (a daemon does this on every start).
const home = await mkdtemp(join(tmpdir(), 'rpib-bench-'))
try {
  let t = performance.now()
  await loadOrCreateIdentity(home)
  const create = performance.now() - t
  const n = 200
  t = performance.now()
  for (let i = 0; i < n; i++) await loadOrCreateIdentity(home)
  const load = (performance.now() - t) / n
  printTable('identity', [
    { metric: 'create Ed25519 identity', value: create, unit: 'ms' },
    { metric: 'load identity (mean of 200)', value: load, unit: 'ms' },
  ])
} finally {
  await rm(home, { recursive: true, force: true })
}
