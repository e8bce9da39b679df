/**
 * DNS-rebinding protection for MCP routes (MCP Transports, "Security Warning": servers MUST validate the
 * `Origin` header). A browser page on any other origin is refused; clients that are not browsers send
 * no `Origin` and are let through, since the bearer token is what authenticates them.
 */

/** Normalises an origin for comparison: lowercase scheme and host, no default port, no trailing slash. */
export function normalizeOrigin(value: string): string | undefined {
  if (value === 'null') return undefined;
  const url = URL.parse(value);
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) return undefined;
  return url.origin;
}

export interface OriginPolicy {
  /** True when a request with this `Origin` header value (or none) may proceed. */
  allows(origin: string | undefined): boolean;
}

/**
 * The gateway's own origin is always allowed (its own pages), plus the server's `allowedOrigins`.
 * Exact origins are looked up as sent first, so the common case costs one `Set` lookup and no parsing.
 */
export function createOriginPolicy(gatewayOrigin: string, allowedOrigins: readonly string[]): OriginPolicy {
  const allowed = new Set<string>();
  for (const entry of [gatewayOrigin, ...allowedOrigins]) {
    const normalized = normalizeOrigin(entry);
    if (normalized) allowed.add(normalized);
  }
  return {
    allows(origin) {
      if (origin === undefined) return true;
      if (allowed.has(origin)) return true;
      const normalized = normalizeOrigin(origin);
      return normalized !== undefined && allowed.has(normalized);
    },
  };
}
