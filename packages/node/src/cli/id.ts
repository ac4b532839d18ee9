import type { Command } from 'commander'
import { loadOrCreateIdentity } from '../config/identity.js'
import { ensurePrivateDir } from '../config/paths.js'
import { emit, globalOptions } from './output.js'

export function registerId(program: Command): void {
  program
    .command('id')
    .description("show this node's Ed25519 identity (peer id), creating it on first run")
    .action(async (_opts, cmd: Command) => {
      const { home } = globalOptions(cmd)
      await ensurePrivateDir(home)
      const id = await loadOrCreateIdentity(home)
      const data = { peerId: id.peerId.toString(), keyType: 'Ed25519', created: id.created, path: id.path }
      emit(cmd, data, () => `${data.peerId}${id.created ? `\n(new identity created in ${id.path})` : ''}`)
    })
}
