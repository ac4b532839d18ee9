// Runs every compiled bench script (packages/*/dist/bench/*.bench.js, test/dist/bench/*.bench.js)
// in its own process, one after another, so their numbers do not disturb each other.
// `npm run bench -- <filter>` runs only the scripts whose path contains <filter>.
import { spawnSync } from 'node:child_process'
import { globSync } from 'node:fs'

const filter = process.argv[2] ?? ''
const files = [...globSync('packages/*/dist/bench/*.bench.js'), ...globSync('test/dist/bench/*.bench.js')]
  .filter((f) => f.includes(filter))
  .sort()
if (files.length === 0) {
  console.error(`no bench scripts match "${filter}"; run npm run build first`)
  process.exit(1)
}
let failed = 0
for (const file of files) {
  const r = spawnSync(process.execPath, [file], { stdio: 'inherit', timeout: 15 * 60_000 })
  if (r.status !== 0) {
    failed++
    console.error(`bench ${file} failed (status ${r.status ?? r.signal})`)
  }
}
process.exit(failed === 0 ? 0 : 1)
