/** Docker labels are the runtime's only state: after a restart they say which lease a container serves. */
export const LABEL_LEASE_ID = 'io.rpib.lease-id'
export const LABEL_EXPIRES_AT = 'io.rpib.expires-at'
/** Which runtime namespace owns the container, so parallel runtimes (and tests) never touch each other's. */
export const LABEL_NAMESPACE = 'io.rpib.namespace'
export const LABEL_DISK_MB = 'io.rpib.disk-mb'

export interface ParsedLeaseLabels {
  leaseId: string
  expiresAt: number
}

export function parseLeaseLabels(labels: Record<string, string> | undefined): ParsedLeaseLabels | undefined {
  const leaseId = labels?.[LABEL_LEASE_ID]
  const expiresAt = Number(labels?.[LABEL_EXPIRES_AT])
  if (leaseId == null || !Number.isSafeInteger(expiresAt)) return undefined
  return { leaseId, expiresAt }
}
