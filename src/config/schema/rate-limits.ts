/**
 * `servers[].rateLimits`: limits on MCP calls per user, per client and per user and tool, shared by
 * every replica through storage (docs/rate-limits.md; the decisions in src/policy/mcp-rate-limit.ts).
 */
import { z } from 'zod';

const rateLimitRule = z
  .object({
    per: z
      .enum(['user', 'client', 'user+tool'])
      .describe(
        "Whose calls are counted together: `user` (one person, whatever the client), `client` (one OAuth client, whoever uses it) or `user+tool` (one person's `tools/call` of one tool; each tool counted on its own).",
      ),
    limit: z.number().int().positive().describe('Calls allowed per window; the next one is answered 429 with `Retry-After` and a JSON-RPC error.'),
    windowSeconds: z
      .number()
      .int()
      .positive()
      .max(7 * 86_400)
      .describe('Window length in seconds, aligned to the clock (60: each minute, 86400: each UTC day). Counts start again at each window.'),
    tools: z.array(z.string().min(1)).optional().describe('`user+tool` rules only: the tools counted (each one separately). Absent: every tool.'),
    maxLease: z
      .number()
      .int()
      .positive()
      .default(50)
      .describe(
        "Largest part of a window's budget one replica takes from storage at once and spends without asking storage again (smaller near the end of the budget). Larger: fewer storage round trips; smaller: less budget held unspent by one replica while another is refused (docs/rate-limits.md).",
      ),
  })
  .superRefine((rule, ctx) => {
    if (rule.tools !== undefined && rule.per !== 'user+tool')
      ctx.addIssue({ code: 'custom', path: ['tools'], message: 'only `per: user+tool` rules name tools' });
  });

export const rateLimitsSchema = z
  .array(rateLimitRule)
  .default([])
  .describe(
    'Rate limits on MCP calls to this server (docs/rate-limits.md). Every rule applies; a call over any of them is refused with 429. `user` and `client` rules count each JSON-RPC request; `user+tool` rules count `tools/call`.',
  );

interface TargetProblem {
  path: (string | number)[];
  message: string;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Limits and argument audit need the request bodies: a forward-auth server's traffic never passes
 * through the gateway, and the stdio bridge reads its bodies itself (so it can count requests, but
 * not see tool names or arguments). Refused rather than silently ignored.
 */
export function perCallTargetProblems(server: unknown): TargetProblem[] {
  if (!isRecord(server) || !isRecord(server.upstream)) return [];
  const forwardAuth = server.upstream.forwardAuth === true;
  const stdio = server.upstream.stdio !== undefined;
  const problems: TargetProblem[] = [];
  const rules = Array.isArray(server.rateLimits) ? server.rateLimits : [];
  if (forwardAuth && rules.length > 0) {
    problems.push({ path: ['rateLimits'], message: "a forwardAuth server's traffic does not pass through the gateway; limit it at your reverse proxy" });
  }
  if (stdio) {
    rules.forEach((rule, index) => {
      if (isRecord(rule) && rule.per === 'user+tool') {
        problems.push({
          path: ['rateLimits', index, 'per'],
          message: 'stdio servers support `user` and `client` rules only (the bridge reads tool names itself)',
        });
      }
    });
  }
  if ((forwardAuth || stdio) && isRecord(server.audit) && server.audit.includeArguments === true) {
    problems.push({
      path: ['audit', 'includeArguments'],
      message: 'only servers the gateway proxies over HTTP (upstream.url, builtin) can have their arguments audited',
    });
  }
  return problems;
}
