import { z } from 'zod'

/**
 * One API operation described once, as data: method, path, who may call it, and the zod schemas of its
 * input and output. The server binds a handler to it (`ApiRouter.route`), the CLI client calls it
 * (`ApiClient.call`), and the OpenAPI document is generated from it — so the three cannot drift apart.
 * Route descriptors import nothing but zod, so they can move into @rpib/protocol for the UI to share.
 */
export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE'

export type ObjectSchema = z.ZodObject

export interface ApiRoute<
  P extends ObjectSchema | undefined = undefined,
  Q extends ObjectSchema | undefined = undefined,
  B extends z.ZodType | undefined = undefined,
  R extends z.ZodType = z.ZodType,
> {
  /** stable id, used as the OpenAPI operationId (e.g. `getNode`) */
  id: string
  method: HttpMethod
  /** Fastify-style path with `:name` parameters, always under `/api/` */
  path: string
  summary: string
  description?: string
  /** OpenAPI tag: the module that owns the route (`node`, `market`, `payments`…) */
  tag: string
  /** `public` routes need no bearer token (Host and Origin checks still apply) */
  auth: 'token' | 'public'
  params?: P
  query?: Q
  body?: B
  /** the 2xx response body; also a whitelist (unknown fields are stripped before sending) */
  response: R
  /** 200 unless set */
  successStatus?: 200 | 201 | 202
  /** `sse`: the route answers with a text/event-stream instead of a JSON body */
  stream?: 'sse'
}

export type AnyApiRoute = ApiRoute<ObjectSchema | undefined, ObjectSchema | undefined, z.ZodType | undefined>

type Parsed<S> = S extends z.ZodType ? z.output<S> : undefined
type Raw<S> = S extends z.ZodType ? z.input<S> : undefined

/** What a handler receives: validated params, query and body. */
export interface RouteInput<P, Q, B> {
  params: Parsed<P>
  query: Parsed<Q>
  body: Parsed<B>
}

/** What a client passes: only the parts the route declares. */
export type CallInput<P, Q, B> = (P extends z.ZodType ? { params: Raw<P> } : { params?: undefined }) &
  (Q extends z.ZodType ? { query: Raw<Q> } : { query?: undefined }) &
  (B extends z.ZodType ? { body: Raw<B> } : { body?: undefined })

export function defineRoute<
  P extends ObjectSchema | undefined = undefined,
  Q extends ObjectSchema | undefined = undefined,
  B extends z.ZodType | undefined = undefined,
  R extends z.ZodType = z.ZodType,
>(route: ApiRoute<P, Q, B, R>): ApiRoute<P, Q, B, R> {
  if (!route.path.startsWith('/api/')) throw new Error(`API route ${route.id} must live under /api/`)
  return route
}

/** Fills `:name` parameters into a path (each value URI-encoded). */
export function fillPath(path: string, params: Record<string, unknown> | undefined): string {
  return path.replace(/:([A-Za-z0-9_]+)/g, (_m, name: string) => {
    const v = params?.[name]
    if (v == null) throw new Error(`missing path parameter ${name} for ${path}`)
    return encodeURIComponent(String(v))
  })
}

/** RFC 9457 problem details, the body of every error response. */
export const ProblemSchema = z
  .object({
    type: z.string().describe('URI naming the error kind (`urn:rpib:error:<code>`)'),
    title: z.string().describe('short summary of the error kind'),
    status: z.number().int().describe('the HTTP status code'),
    detail: z.string().describe('one line saying what went wrong and what to do'),
    code: z.string().describe('stable machine-readable error code (`ERR_…`)'),
    instance: z.string().optional().describe('the request path'),
    issues: z
      .array(z.object({ path: z.string(), message: z.string() }))
      .optional()
      .describe('validation errors, one per bad field'),
  })
  .meta({ id: 'Problem' })
export type Problem = z.infer<typeof ProblemSchema>
