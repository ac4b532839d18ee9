import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import {
  DEBIAN_IMAGE,
  dockerSkipReason,
  runProcess,
  startTestProvider,
  type TestProvider,
} from '../containers/harness.js'

const skip = await dockerSkipReason([DEBIAN_IMAGE])
const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex')

describe('file transfer into a Debian lease (scp, sftp)', { skip }, () => {
  let provider: TestProvider
  let payload: Buffer
  let upload: string
  before(async () => {
    provider = await startTestProvider()
    await provider.addLease('files', {
      image: DEBIAN_IMAGE,
      resources: { cpus: 1000, memoryMb: 256, diskMb: 64, pidsLimit: 128 },
    })
    payload = randomBytes(10 * 1024 * 1024)
    upload = join(provider.dir, 'upload.bin')
    await writeFile(upload, payload)
  })
  after(async () => {
    await provider?.close()
  })

  it('round-trips a 10 MB file with scp (SFTP protocol) and keeps its checksum', async () => {
    const target = `files@127.0.0.1:/root/scp.bin`
    const opts = [...provider.sshOptions(), '-P', String(provider.server.port)]
    const up = await runProcess('scp', [...opts, upload, target], { timeoutMs: 60_000 })
    assert.equal(up.code, 0, up.stderr)
    const remoteSum = await provider.ssh('files', ['sha256sum /root/scp.bin'])
    assert.equal(remoteSum.stdout.split(' ')[0], sha256(payload))
    const back = join(provider.dir, 'scp-back.bin')
    const down = await runProcess('scp', [...opts, target, back], { timeoutMs: 60_000 })
    assert.equal(down.code, 0, down.stderr)
    assert.equal(sha256(await readFile(back)), sha256(payload))
  })

  it('round-trips a 10 MB file with sftp batch mode and keeps its checksum', async () => {
    const back = join(provider.dir, 'sftp-back.bin')
    const batch = join(provider.dir, 'batch')
    await writeFile(batch, `put ${upload} /root/sftp.bin\nget /root/sftp.bin ${back}\nls -l /root/sftp.bin\n`)
    const result = await runProcess(
      'sftp',
      [...provider.sshOptions(), '-P', String(provider.server.port), '-b', batch, 'files@127.0.0.1'],
      { timeoutMs: 60_000 },
    )
    assert.equal(result.code, 0, result.stderr)
    assert.match(result.stdout, /10485760/)
    assert.equal(sha256(await readFile(back)), sha256(payload))
  })

  it('lets a renter use legacy scp -O too (scp binary in the image)', async () => {
    const result = await runProcess(
      'scp',
      [
        '-O',
        ...provider.sshOptions(),
        '-P',
        String(provider.server.port),
        upload,
        'files@127.0.0.1:/root/legacy.bin',
      ],
      { timeoutMs: 60_000 },
    )
    assert.equal(result.code, 0, result.stderr)
    const remoteSum = await provider.ssh('files', ['sha256sum /root/legacy.bin'])
    assert.equal(remoteSum.stdout.split(' ')[0], sha256(payload))
  })
})
