/**
 * `stripClientHeaders`: request headers, besides the built-in identity-header family
 * (src/resource-server/forgeable-headers.ts), that a client may never pass to an MCP server. An entry
 * is a header name or a prefix ending in `*`. Entries that would strip what the MCP transports need
 * are refused, so a typo cannot break every server.
 */
import { z } from 'zod';

/** RFC 9110 §5.1 field name (a token), optionally followed by `*` for a prefix. */
const ENTRY = /^[!#$%&'+.^_`|~0-9A-Za-z-]+\*?$/;

/** Headers the MCP transports (Streamable HTTP, HTTP+SSE) need on the way up. */
const TRANSPORT_HEADERS = ['accept', 'content-type', 'content-length', 'mcp-session-id', 'mcp-protocol-version', 'last-event-id'];

/** Why `entry` is refused, or undefined. */
export function stripEntryProblem(entry: string): string | undefined {
  if (!ENTRY.test(entry)) return 'must be a header name, or a prefix of one followed by *';
  const lower = entry.toLowerCase();
  const prefix = lower.endsWith('*') ? lower.slice(0, -1) : undefined;
  const hit = TRANSPORT_HEADERS.find((name) => (prefix === undefined ? name === lower : name.startsWith(prefix)));
  return hit === undefined ? undefined : `would strip ${hit}, which MCP clients and servers need`;
}

export const stripClientHeadersSchema = z
  .array(
    z.string().superRefine((entry, ctx) => {
      const problem = stripEntryProblem(entry);
      if (problem) ctx.addIssue({ code: 'custom', message: problem });
    }),
  )
  .default([])
  .describe(
    'Request headers a client may never pass to an MCP server, besides the built-in identity-header family (`remote-user`, `x-user*`, `x-auth-request-*`, `x-forwarded-*`, `x-email`, `x-webauth-*`, `x-ms-client-principal*`, `x-goog-authenticated-user-*`, `cf-access-*`, `x-amzn-oidc-*`, `x-pomerium-*`, `x-mcp-gateway-*`, …) and every identity or IdP-token header configured on any server: header names, or prefixes ending in `*` (for example `[x-tenant-id, x-acme-*]`). Stripped whether or not the server sets them; the gateway then adds its own.',
  );
