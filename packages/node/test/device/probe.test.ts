import assert from 'node:assert/strict'
import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { DeviceSpecsSchema } from '@rpib/protocol'
import { dockerArch, sha256Score } from '../../src/device/probe.js'
import { dockerSkipReason } from '../containers/harness.js'
import { runCli } from '../helpers/cli.js'

const skip = await dockerSkipReason([])

describe('device probe', () => {
  it('names architectures as Docker platforms do', () => {
    assert.equal(dockerArch('x64'), 'amd64')
    assert.equal(dockerArch('arm64'), 'arm64')
    assert.equal(dockerArch('arm', '7'), 'armhf')
    assert.equal(dockerArch('arm', '6'), 'armel')
  })

  it('measures a positive SHA-256 score', () => {
    assert.ok(sha256Score(100) > 0)
  })

  it('`rpib device probe --json` returns a valid DeviceSpecs record in under 15 s', { skip }, async () => {
    const home = await mkdtemp(join(tmpdir(), 'rpib-probe-'))
    try {
      const started = Date.now()
      const result = await runCli(['--json', '--home', home, 'device', 'probe'])
      const elapsed = Date.now() - started
      assert.equal(result.code, 0, result.stderr)
      const specs = DeviceSpecsSchema.parse(JSON.parse(result.stdout))
      assert.equal(specs.arch, dockerArch())
      assert.ok(specs.cpuScore > 0 && specs.diskWriteMBps > 0 && specs.memoryMb > 0 && specs.diskFreeMb > 0)
      assert.match(specs.dockerVersion, /^\d+\.\d+/)
      assert.ok(elapsed < 15_000, `probe took ${elapsed} ms`)
      // the scratch file of the write test is gone
      assert.deepEqual(
        (await readdir(home)).filter((f) => f.startsWith('.rpib-probe')),
        [],
      )
    } finally {
      await rm(home, { recursive: true, force: true })
    }
  })

  it('prints a one-line typed error when Docker is unreachable', async () => {
    const home = await mkdtemp(join(tmpdir(), 'rpib-probe-'))
    try {
      const result = await runCli(['--json', '--home', home, 'device', 'probe'], {
        DOCKER_HOST: 'unix:///nonexistent/docker.sock',
      })
      assert.equal(result.code, 1)
      const { error } = JSON.parse(result.stdout) as { error: { code: string; message: string } }
      assert.equal(error.code, 'ERR_DOCKER_UNAVAILABLE')
      assert.match(error.message, /start dockerd/)
    } finally {
      await rm(home, { recursive: true, force: true })
    }
  })
})
