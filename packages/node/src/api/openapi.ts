import { z } from 'zod'
import { ProblemSchema, type AnyApiRoute } from './contract.js'

type JsonObject = Record<string, unknown>

/**
 * Converts one zod schema to JSON Schema (2020-12, which OpenAPI 3.1 uses as is), moving shared
 * definitions into `components.schemas`.
 */
function jsonSchema(schema: z.ZodType, io: 'input' | 'output', components: JsonObject): JsonObject {
  const raw = z.toJSONSchema(schema, { io, unrepresentable: 'any', reused: 'inline' }) as JsonObject
  const { $schema: _s, $defs, ...rest } = raw
  for (const [name, def] of Object.entries(($defs as JsonObject | undefined) ?? {})) components[name] = def
  return JSON.parse(JSON.stringify(rest).replaceAll('"#/$defs/', '"#/components/schemas/')) as JsonObject
}

function parameters(
  where: 'path' | 'query',
  schema: z.ZodObject | undefined,
  components: JsonObject,
): JsonObject[] {
  if (schema == null) return []
  const obj = jsonSchema(schema, 'input', components)
  const props = (obj.properties as Record<string, JsonObject> | undefined) ?? {}
  const required = new Set((obj.required as string[] | undefined) ?? [])
  return Object.entries(props).map(([name, s]) => {
    const { description, ...rest } = s
    return {
      name,
      in: where,
      required: where === 'path' || required.has(name),
      ...(description != null ? { description } : {}),
      schema: rest,
    }
  })
}

const problemRef = (description: string): JsonObject => ({
  description,
  content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } },
})

/** The OpenAPI 3.1 document of every registered route, served at /api/docs. */
export function buildOpenApiDocument(
  routes: readonly AnyApiRoute[],
  info: { version: string; apiUrl: string },
): JsonObject & { openapi: '3.1.0' } {
  const components: JsonObject = {}
  const problem = jsonSchema(ProblemSchema, 'output', components)
  components.Problem = problem.$ref != null ? components.Problem : problem
  const paths: Record<string, JsonObject> = {}
  for (const r of routes) {
    const openapiPath = r.path.replace(/:([A-Za-z0-9_]+)/g, '{$1}')
    const responses: JsonObject = {
      [String(r.successStatus ?? 200)]:
        r.stream === 'sse'
          ? {
              description: 'a stream of server-sent events; each `data` line is this JSON',
              content: { 'text/event-stream': { schema: jsonSchema(r.response, 'output', components) } },
            }
          : {
              description: 'success',
              content: { 'application/json': { schema: jsonSchema(r.response, 'output', components) } },
            },
      '400': problemRef('invalid request (each bad field is listed in `issues`)'),
      '403': problemRef('cross-origin request refused'),
      '404': problemRef('not found'),
      '421': problemRef('Host header is not this API (DNS-rebinding defence)'),
      '500': problemRef('internal error'),
    }
    if (r.auth === 'token') responses['401'] = problemRef('missing or wrong bearer token')
    const operation: JsonObject = {
      operationId: r.id,
      summary: r.summary,
      ...(r.description != null ? { description: r.description } : {}),
      tags: [r.tag],
      security: r.auth === 'public' ? [] : [{ bearerToken: [] }],
      parameters: [...parameters('path', r.params, components), ...parameters('query', r.query, components)],
      ...(r.body != null
        ? {
            requestBody: {
              required: true,
              content: { 'application/json': { schema: jsonSchema(r.body, 'input', components) } },
            },
          }
        : {}),
      responses,
    }
    paths[openapiPath] = { ...(paths[openapiPath] ?? {}), [r.method.toLowerCase()]: operation }
  }
  return {
    openapi: '3.1.0' as const,
    info: {
      title: 'RPi Broker local API',
      version: info.version,
      description:
        'The one door into a running rpib daemon. Loopback only; send `Authorization: Bearer <token>` ' +
        '(the token is in `<data dir>/api-token`). Errors are RFC 9457 problem+json.',
    },
    servers: [{ url: info.apiUrl }],
    security: [{ bearerToken: [] }],
    paths,
    components: {
      schemas: components,
      securitySchemes: {
        bearerToken: { type: 'http', scheme: 'bearer', description: 'contents of <data dir>/api-token' },
      },
    },
  }
}
