import type { Command } from 'commander'
import { ensurePrivateDir } from '../config/paths.js'
import { probeDevice } from '../device/probe.js'
import { emit, globalOptions } from './output.js'

export function registerDevice(program: Command): void {
  const device = program.command('device').description('this device as a provider: measure it and list it')
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
}
