import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm, stat } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { resolveConfig } from '../../src/config/config.js'
import { createDaemon, type DaemonService } from '../../src/daemon.js'
import { createJsonLogger } from '../../src/daemon/json-log.js'
import { RpibError } from '../../src/errors.js'

const config = resolveConfig([{ label: 'test', layer: { api: { port: 0 } } }])

function capture(): {
  log: ReturnType<typeof createJsonLogger>
  lines: () => { event: string; service?: string; level: string }[]
} {
  const out: string[] = []
  const stream = new Writable({
    write(chunk: Buffer, _e, cb) {
      out.push(
        ...chunk
          .toString('utf8')
          .split('\n')
          .filter((l) => l !== ''),
      )
      cb()
    },
  })
  return {
    log: createJsonLogger({ level: 'debug', stream }),
    lines: () => out.map((l) => JSON.parse(l) as { event: string; service?: string; level: string }),
  }
}

/** A service that records its lifecycle calls into `journal`. */
function recorder(name: string, journal: string[], behaviour: Partial<DaemonService> = {}): DaemonService {
  return {
    name,
    start: async () => {
      journal.push(`start ${name}`)
    },
    stop: async () => {
      journal.push(`stop ${name}`)
    },
    reconcile: async () => {
      journal.push(`reconcile ${name}`)
    },
    ...behaviour,
  }
}

function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer()
    srv.once('error', () => resolve(false))
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)))
  })
}

async function withHome<T>(fn: (home: string) => Promise<T>): Promise<T> {
  const home = await mkdtemp(join(tmpdir(), 'rpib-services-'))
  try {
    return await fn(home)
  } finally {
    await rm(home, { recursive: true, force: true })
  }
}

test('services start in order, reconcile after all started, stop in reverse; states are published', async () => {
  await withHome(async (home) => {
    const journal: string[] = []
    const { log, lines } = capture()
    const daemon = createDaemon(
      { home, config },
      {
        log,
        services: () => [
          recorder('p2p', journal),
          recorder('market', journal),
          recorder('payments', journal),
        ],
      },
    )
    const states: string[] = []
    daemon.events.subscribe((e) => {
      if (e.type === 'service.state')
        states.push(`${(e.data as { service: string }).service}:${(e.data as { state: string }).state}`)
    })
    try {
      await daemon.start()
      assert.deepEqual(journal, [
        'start p2p',
        'start market',
        'start payments',
        'reconcile p2p',
        'reconcile market',
        'reconcile payments',
      ])
    } finally {
      await daemon.stop()
    }
    assert.deepEqual(journal.slice(6), ['stop payments', 'stop market', 'stop p2p'])
    assert.ok(states.includes('market:running') && states.includes('market:stopped'))
    assert.equal(await stat(join(home, 'daemon.lock')).catch(() => undefined), undefined)
    const events = lines().map((l) => l.event)
    assert.ok(events.includes('daemon.started') && events.includes('daemon.stopped'))
    // stop is idempotent
    await daemon.stop()
    assert.equal(journal.filter((j) => j.startsWith('stop')).length, 3)
  })
})

test('a service that fails to start rolls back everything: started services stopped, port and lock released', async () => {
  await withHome(async (home) => {
    const journal: string[] = []
    const { log, lines } = capture()
    let port = 0
    const failing = recorder('payments', journal, {
      start: async () => {
        throw new RpibError('ERR_CHAIN_UNREACHABLE', 'chain backend unreachable; check bitcoin.url')
      },
    })
    const daemon = createDaemon(
      { home, config },
      { log, services: () => [recorder('p2p', journal), failing, recorder('relay', journal)] },
    )
    daemon.events.subscribe((e) => {
      if (e.type === 'service.state' && daemon.apiUrl != null) port = Number(new URL(daemon.apiUrl).port)
    })
    await assert.rejects(daemon.start(), { code: 'ERR_CHAIN_UNREACHABLE' })
    // the failed service is stopped too (it may hold part of what it acquired); the never-started one is not
    assert.deepEqual(journal, ['start p2p', 'stop payments', 'stop p2p'])
    assert.ok(port > 0)
    assert.equal(await portIsFree(port), true)
    assert.ok(lines().some((l) => l.event === 'daemon.start_failed' && l.level === 'error'))
    // the home is usable again at once
    const again = createDaemon({ home, config }, { log, services: () => [] })
    await again.start()
    await again.stop()
  })
})

test('stop() during a slow start aborts it and releases everything', async () => {
  await withHome(async (home) => {
    const { log } = capture()
    let startEntered: () => void = () => {}
    const entered = new Promise<void>((resolve) => (startEntered = resolve))
    let stopped = false
    const slow: DaemonService = {
      name: 'slow',
      start: (signal) =>
        new Promise<void>((_resolve, reject) => {
          startEntered()
          signal.addEventListener('abort', () => reject(new RpibError('ERR_ABORTED', 'start aborted')), {
            once: true,
          })
        }),
      stop: async () => {
        stopped = true
      },
    }
    const daemon = createDaemon({ home, config }, { log, services: () => [slow] })
    const starting = daemon.start()
    await entered
    await daemon.stop('signal')
    await assert.rejects(starting, { code: 'ERR_ABORTED' })
    assert.equal(stopped, true, 'a partially started service is still stopped')
    assert.equal(await stat(join(home, 'daemon.lock')).catch(() => undefined), undefined)
  })
})

test('a service whose stop hangs is reported after the stop timeout and the rest still stop', async () => {
  await withHome(async (home) => {
    const journal: string[] = []
    const { log, lines } = capture()
    let release: () => void = () => {}
    const hanging = recorder('stuck', journal, {
      stop: () => new Promise<void>((resolve) => (release = resolve)),
    })
    const daemon = createDaemon(
      { home, config },
      { log, stopTimeoutMs: 200, services: () => [recorder('p2p', journal), hanging] },
    )
    try {
      await daemon.start()
      await daemon.stop()
      assert.ok(journal.includes('stop p2p'))
      assert.ok(lines().some((l) => l.event === 'service.stop_failed' && l.service === 'stuck'))
    } finally {
      release()
    }
  })
})

test('two services with the same name are a wiring bug caught at start', async () => {
  await withHome(async (home) => {
    const { log } = capture()
    const journal: string[] = []
    const daemon = createDaemon(
      { home, config },
      { log, services: () => [recorder('p2p', journal), recorder('p2p', journal)] },
    )
    await assert.rejects(daemon.start(), /two services are named p2p/)
    assert.deepEqual(journal, [])
  })
})
