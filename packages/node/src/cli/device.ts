import type { Command } from 'commander'
import { ensurePrivateDir } from '../config/paths.js'
import { probeDevice } from '../device/probe.js'
import {
  addDeviceRoute,
  deviceEarningsRoute,
  earningsRoute,
  listDevicesRoute,
  publishDeviceRoute,
  removeDeviceRoute,
  showDeviceRoute,
  unpublishDeviceRoute,
  type AddDeviceBody,
  type DeviceDetail,
  type DeviceView,
  type Earnings,
} from '../daemon/device-routes.js'
import { RpibError, UsageError } from '../errors.js'
import { connectToDaemon, type ApiClient } from './client.js'
import { emit, globalOptions } from './output.js'

interface AddOptions {
  name: string
  price: string
  id?: string
  description?: string
  minHours?: string
  maxHours?: string
  slots?: string
  image: string[]
  cpus?: string
  memory?: string
  disk?: string
  pids?: string
  publish: boolean
}

function wholeNumber(value: string, flag: string, min = 1): number {
  const n = /^\d+$/.test(value.trim()) ? Number(value) : NaN
  if (!Number.isSafeInteger(n) || n < min)
    throw new UsageError(`${flag} must be a whole number ≥ ${min}, got "${value}"`)
  return n
}

const SIZE_UNITS_MB: Record<string, number> = {
  m: 1,
  mb: 1,
  g: 1024,
  gb: 1024,
  t: 1024 * 1024,
  tb: 1024 * 1024,
}

/** `512m`, `2g`, `1.5g`, `300` (MB) → whole megabytes. */
export function parseSizeMb(value: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(value.trim())
  const unit = SIZE_UNITS_MB[(m?.[2] ?? '').toLowerCase() || 'm']
  if (m == null || unit === undefined)
    throw new UsageError(`${flag} takes a size such as 512m or 2g, got "${value}"`)
  const mb = Math.round(Number(m[1]) * unit)
  if (!Number.isSafeInteger(mb) || mb < 1) throw new UsageError(`${flag} is too small: "${value}"`)
  return mb
}

/** `--cpus 1.5` → 1500 thousandths of a CPU, the unit listings use. */
export function parseCpus(value: string): number {
  const n = /^\d+(\.\d{1,3})?$/.test(value.trim()) ? Number(value) : NaN
  if (!Number.isFinite(n) || n < 0.001)
    throw new UsageError(`--cpus takes a number of CPUs such as 1 or 0.5, got "${value}"`)
  return Math.round(n * 1000)
}

/** A device id from its name: `Kitchen Pi 4` → `kitchen-pi-4`. */
export function deviceIdFromName(name: string): string {
  const id = name
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+/, '')
    .slice(0, 64)
    .replace(/-+$/, '')
  if (id === '') throw new UsageError(`cannot make a device id from the name "${name}"; pass --id <id>`)
  return id
}

/** Turns `rpib device add` flags into the API body; the daemon validates the rest. */
export function addBody(o: AddOptions): AddDeviceBody {
  const limits = {
    ...(o.cpus != null ? { cpus: parseCpus(o.cpus) } : {}),
    ...(o.memory != null ? { memoryMb: parseSizeMb(o.memory, '--memory') } : {}),
    ...(o.disk != null ? { diskMb: parseSizeMb(o.disk, '--disk') } : {}),
    ...(o.pids != null ? { pidsLimit: wholeNumber(o.pids, '--pids') } : {}),
  }
  return {
    id: o.id ?? deviceIdFromName(o.name),
    name: o.name,
    satsPerHour: wholeNumber(o.price, '--price'),
    ...(o.description != null ? { description: o.description } : {}),
    ...(o.minHours != null ? { minHours: wholeNumber(o.minHours, '--min-hours') } : {}),
    ...(o.maxHours != null ? { maxHours: wholeNumber(o.maxHours, '--max-hours') } : {}),
    ...(o.slots != null ? { slots: wholeNumber(o.slots, '--slots') } : {}),
    ...(o.image.length > 0 ? { images: o.image } : {}),
    limits,
    publish: o.publish,
  }
}

/** Runs `body` against the daemon of `--home`; a daemon without the provider role says so clearly. */
async function withProvider<T>(cmd: Command, body: (client: ApiClient) => Promise<T>): Promise<T> {
  const { home } = globalOptions(cmd)
  const { client } = await connectToDaemon(home)
  try {
    return await body(client)
  } catch (err) {
    if (err instanceof RpibError && err.code === 'ERR_NOT_FOUND' && err.message.startsWith('no API route')) {
      throw new RpibError(
        'ERR_NOT_PROVIDER',
        `the daemon for ${home} does not run the provider role; restart it with \`rpib daemon --provider\``,
      )
    }
    throw err
  }
}

const collect = (value: string, previous: string[]): string[] => [...previous, value]

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_h, i) => Math.max(...rows.map((r) => r[i]!.length)))
  return rows
    .map((r) =>
      r
        .map((cell, i) => cell.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n')
}

function listingText(d: DeviceView): string {
  if (d.listing === null) return '-'
  return d.listing.status === 'listed' ? `v${d.listing.version}` : `v${d.listing.version} (unlisted)`
}

function detailText(d: DeviceDetail): string {
  const lines = [
    `${d.name} (${d.id})${d.published ? '' : ' — not published'}`,
    d.description !== '' ? d.description : undefined,
    `price       ${d.satsPerHour} sats/h, ${d.minHours}–${d.maxHours} h per lease`,
    `slots       ${d.busySlots}/${d.slots} busy`,
    `images      ${d.images.join(', ')}`,
    `limits      ${d.limits.cpus / 1000} CPU, ${d.limits.memoryMb} MB memory, ${d.limits.diskMb} MB disk, ${d.limits.pidsLimit} processes`,
    `listing     ${d.listing === null ? 'never listed' : `${d.listing.key} ${listingText(d)}`}`,
    d.problem !== undefined ? `problem     ${d.problem}` : undefined,
    `rentals     ${d.rentals.length}`,
    ...d.rentals.map(
      (r) =>
        `  ${r.offerId.slice(0, 12)}  ${r.status.padEnd(16)} ${r.paidSats}/${r.priceSats} sats paid` +
        (r.refundedSats > 0 ? `, ${r.refundedSats} refunded` : '') +
        (r.endReason !== undefined ? ` (${r.endReason})` : ''),
    ),
  ]
  return lines.filter((l) => l !== undefined).join('\n')
}

function earningsRows(list: Earnings[]): string {
  return table([
    ['DEVICE', 'LEASES', 'PAID', 'REFUNDED', 'EARNED', 'REFUNDS PENDING'],
    ...list.map((e) => [
      e.deviceId,
      String(e.leasesServed),
      String(e.paidSats),
      String(e.refundedSats),
      String(e.earnedSats),
      String(e.pendingRefundSats),
    ]),
  ])
}

export function registerDevice(program: Command): void {
  const device = program
    .command('device')
    .description('this node’s devices as a provider: measure, add, list, publish and see what they earn')
  device
    .command('probe')
    .description('measure this device (CPU, memory, disk, Docker, kernel) as its listing will show it')
    .action(async (_opts, cmd: Command) => {
      const { home } = globalOptions(cmd)
      await ensurePrivateDir(home)
      const started = performance.now()
      const specs = await probeDevice({ scratchDir: home })
      const seconds = (performance.now() - started) / 1000
      emit(cmd, specs, () =>
        [
          `arch          ${specs.arch}`,
          `cpu           ${specs.cpuModel} (${specs.cpuCores} cores)`,
          `cpu score     ${specs.cpuScore} MB/s SHA-256, one core`,
          `memory        ${specs.memoryMb} MB`,
          `disk free     ${specs.diskFreeMb} MB (${home})`,
          `disk write    ${specs.diskWriteMBps} MB/s`,
          `docker        ${specs.dockerVersion}`,
          `kernel        ${specs.kernel}`,
          `(measured in ${seconds.toFixed(1)} s)`,
        ].join('\n'),
      )
    })

  device
    .command('add')
    .description('rent out a device: the daemon checks its images, signs a listing and publishes it')
    .requiredOption('--name <name>', 'what renters see, e.g. "Kitchen Pi 4"')
    .requiredOption('--price <sats>', 'price in satoshis per hour')
    .option('--id <id>', 'device id in the listing key (default: from the name)')
    .option('--description <text>', 'free text for renters')
    .option('--min-hours <n>', 'shortest lease (default 1)')
    .option('--max-hours <n>', 'longest lease (default 720)')
    .option('--slots <n>', 'leases that may run at the same time (default 1)')
    .option(
      '--image <ref>',
      'a local image to offer; repeat for more (default rpib/base:bookworm)',
      collect,
      [],
    )
    .option('--cpus <n>', 'CPUs per lease, e.g. 1 or 0.5 (default 1)')
    .option('--memory <size>', 'memory per lease, e.g. 512m (default 512m)')
    .option('--disk <size>', 'disk per lease, e.g. 2g (default 2g)')
    .option('--pids <n>', 'processes per lease (default 256)')
    .option('--no-publish', 'register it without listing it (list it later with `rpib device publish`)')
    .action(async (o: AddOptions, cmd: Command) => {
      const body = addBody(o)
      const added = await withProvider(cmd, (client) => client.call(addDeviceRoute, { body }))
      emit(cmd, added, () =>
        added.published
          ? `added ${added.id}: listed as ${added.listing?.key ?? '?'} (${listingText(added)})`
          : `added ${added.id} (not published; \`rpib device publish ${added.id}\` lists it)`,
      )
    })

  device
    .command('list')
    .description('the devices this node rents out, their slots and listings')
    .action(async (_o, cmd: Command) => {
      const r = await withProvider(cmd, (client) => client.call(listDevicesRoute))
      emit(cmd, r, () => {
        const lines: string[] = []
        if (!r.canHost) lines.push(`this node cannot host leases: ${r.reason ?? 'unknown'} — ${r.hint ?? ''}`)
        if (r.devices.length === 0)
          lines.push('no devices; add one with `rpib device add --name … --price …`')
        else
          lines.push(
            table([
              ['ID', 'NAME', 'SATS/H', 'SLOTS', 'PUBLISHED', 'LISTING'],
              ...r.devices.map((d) => [
                d.id,
                d.name,
                String(d.satsPerHour),
                `${d.busySlots}/${d.slots}`,
                d.published ? (d.problem !== undefined ? 'yes (not listed)' : 'yes') : 'no',
                listingText(d),
              ]),
            ]),
          )
        return lines.join('\n')
      })
    })

  device
    .command('show')
    .description('one device: settings, signed listing, busy slots and rentals')
    .argument('<id>', 'device id (see rpib device list)')
    .action(async (id: string, _o, cmd: Command) => {
      const d = await withProvider(cmd, (client) => client.call(showDeviceRoute, { params: { id } }))
      emit(cmd, d, () => detailText(d))
    })

  device
    .command('publish')
    .description('list a device in the market (signs a new listing version)')
    .argument('<id>', 'device id')
    .action(async (id: string, _o, cmd: Command) => {
      const d = await withProvider(cmd, (client) => client.call(publishDeviceRoute, { params: { id } }))
      emit(cmd, d, () => `published ${d.id} (${listingText(d)})`)
    })

  device
    .command('unpublish')
    .description('take a device off the market: running leases go on, new rent requests are refused')
    .argument('<id>', 'device id')
    .action(async (id: string, _o, cmd: Command) => {
      const d = await withProvider(cmd, (client) => client.call(unpublishDeviceRoute, { params: { id } }))
      emit(
        cmd,
        d,
        () =>
          `unpublished ${d.id} (${listingText(d)}); ${d.busySlots} lease(s) keep running until they expire`,
      )
    })

  device
    .command('remove')
    .description('unlist and forget a device (refused while a rental of it is in progress)')
    .argument('<id>', 'device id')
    .action(async (id: string, _o, cmd: Command) => {
      const r = await withProvider(cmd, (client) => client.call(removeDeviceRoute, { params: { id } }))
      emit(cmd, r, () => `removed ${r.removed}`)
    })

  device
    .command('earnings')
    .description('leases served, sats paid, refunded and earned, per device (or for one)')
    .argument('[id]', 'device id (default: every device, with a total)')
    .action(async (id: string | undefined, _o, cmd: Command) => {
      if (id !== undefined) {
        const e = await withProvider(cmd, (client) => client.call(deviceEarningsRoute, { params: { id } }))
        emit(cmd, e, () => earningsRows([e]))
        return
      }
      const r = await withProvider(cmd, (client) => client.call(earningsRoute))
      emit(cmd, r, () => earningsRows([...r.devices, { deviceId: 'TOTAL', ...r.total }]))
    })
}
