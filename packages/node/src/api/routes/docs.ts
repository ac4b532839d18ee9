import { z } from 'zod'
import { defineRoute } from '../contract.js'

/**
 * The OpenAPI document is public: it describes the API's shape (already public in the source) and holds
 * no state or secret, and tools and the UI need it before they have a token. Host and Origin checks
 * still apply, so other web sites cannot read it.
 */
export const docsRoute = defineRoute({
  id: 'getOpenApiDocument',
  method: 'GET',
  path: '/api/docs',
  tag: 'meta',
  auth: 'public',
  summary: 'This OpenAPI 3.1 document',
  response: z.looseObject({ openapi: z.literal('3.1.0') }),
})
