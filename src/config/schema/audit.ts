/**
 * The audit stream (docs/audit.md): `audit` for where it goes, `servers[].audit` for whether a
 * server's call arguments appear in it.
 */
import { z } from 'zod';

export const auditSchema = z
  .object({
    destination: z
      .string()
      .min(1)
      .default('stderr')
      .describe(
        'Where audit lines go: `stderr` (the default; operational logs are on stdout, so the two streams are collected apart), `stdout`, `off`, or a file path (appended to). Each line carries `"stream":"audit"`.',
      ),
  })
  .default({ destination: 'stderr' })
  .describe('The audit stream: security decisions and one line per MCP call, apart from operational logs (docs/audit.md).');

export const serverAuditSchema = z
  .object({
    includeArguments: z
      .boolean()
      .default(false)
      .describe('Write the arguments of `tools/call` and `prompts/get` into the audit line (off by default: they may hold personal data).'),
    redactKeys: z
      .array(z.string().min(1))
      .default([])
      .describe(
        'Argument keys (any depth, case-insensitive) whose values are written as `[redacted]`; credential keys such as `password` and `token` always are.',
      ),
  })
  .default({ includeArguments: false, redactKeys: [] })
  .describe("What this server's audit lines carry beyond the call itself.");
