/** One row of `npm run bench`: what was measured, the number, its unit, and the goal if any. */
export interface BenchRow {
  metric: string
  value: number | string
  unit: string
  goal?: string
}

/** Prints a titled, aligned table; every bench script reports through this. */
export function printTable(title: string, rows: BenchRow[]): void {
  const cells = rows.map((r) => [
    r.metric,
    typeof r.value === 'number' ? formatNumber(r.value) : r.value,
    r.unit,
    r.goal ?? '',
  ])
  const header = ['metric', 'value', 'unit', 'goal']
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)))
  const line = (c: string[]) =>
    '| ' + c.map((v, i) => (i === 1 ? v.padStart(widths[i]!) : v.padEnd(widths[i]!))).join(' | ') + ' |'
  process.stdout.write(`\n${title}\n`)
  process.stdout.write(line(header) + '\n')
  process.stdout.write('|' + widths.map((w) => '-'.repeat(w + 2)).join('|') + '|\n')
  for (const c of cells) process.stdout.write(line(c) + '\n')
}

function formatNumber(n: number): string {
  if (Number.isInteger(n)) return String(n)
  return n >= 100 ? n.toFixed(0) : n >= 1 ? n.toFixed(2) : n.toPrecision(3)
}
