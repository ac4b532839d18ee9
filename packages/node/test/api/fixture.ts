import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { z } from 'zod'
import { defineRoute } from '../../src/api/contract.js'
import type { ApiRouter } from '../../src/api/router.js'
import { resolveConfig, type ConfigLayer } from '../../src/config/config.js'
import { createDaemon, type ComposeServices, type Daemon, type DaemonService } from '../../src/daemon.js'
import { createJsonLogger } from '../../src/daemon/json-log.js'

/** A route module exercising every input kind, registered the way real services register theirs. */
export const putItemRoute = defineRoute({
  id: 'putTestItem',
  method: 'PUT',
  path: '/api/test/items/:itemId',
  tag: 'test',
  auth: 'token',
  summary: 'test route with params, query and body',
  params: z.object({ itemId: z.string().regex(/^[a-z]{1,8}$/) }),
  query: z.object({ dryRun: z.enum(['true', 'false']).optional() }),
  body: z.object({ count: z.number().int().min(1).max(10), note: z.string().max(20).optional() }),
  response: z.object({ itemId: z.string(), count: z.number(), dryRun: z.boolean() }),
})

export const failRoute = defineRoute({
  id: 'getTestFailure',
  method: 'GET',
  path: '/api/test/fail',
  tag: 'test',
  auth: 'token',
  summary: 'test route that hits a bug',
  response: z.object({}),
})

export function testRoutesService(): DaemonService {
  return {
    name: 'test-routes',
    async start() {},
    async stop() {},
    registerRoutes(router: ApiRouter) {
      router.route(putItemRoute, ({ params, query, body }) => ({
        itemId: params.itemId,
        count: body.count,
        dryRun: query.dryRun === 'true',
        // not in the response schema: must never reach the client
        secret: 'internal',
      }))
      router.route(failRoute, () => {
        throw new Error('a bug with internals /etc/secret')
      })
    },
  }
}

export interface RunningDaemon {
  daemon: Daemon
  home: string
  port: number
  token: string
  logs: string[]
  close(): Promise<void>
}

/** An in-process daemon on a random port in a fresh home (stopped and removed by close()). */
export async function startTestDaemon(
  layer: ConfigLayer = {},
  services: ComposeServices = () => [testRoutesService()],
): Promise<RunningDaemon> {
  const home = await mkdtemp(join(tmpdir(), 'rpib-api-'))
  const logs: string[] = []
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      logs.push(
        ...chunk
          .toString('utf8')
          .split('\n')
          .filter((l) => l !== ''),
      )
      cb()
    },
  })
  const config = resolveConfig([
    {
      label: 'test',
      layer: { api: { port: 0, sseHeartbeatSeconds: 0.05 }, log: { level: 'debug' }, ...layer },
    },
  ])
  const daemon = createDaemon(
    { home, config },
    { log: createJsonLogger({ level: 'debug', stream }), services },
  )
  try {
    const { apiUrl } = await daemon.start()
    const token = (await readFile(join(home, 'api-token'), 'utf8')).trim()
    return {
      daemon,
      home,
      port: Number(new URL(apiUrl).port),
      token,
      logs,
      close: async () => {
        await daemon.stop('test done')
        await rm(home, { recursive: true, force: true })
      },
    }
  } catch (err) {
    await daemon.stop('test failed')
    await rm(home, { recursive: true, force: true })
    throw err
  }
}
