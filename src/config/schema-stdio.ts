/**
 * A stdio MCP server the gateway spawns and serves over Streamable HTTP (src/stdio/).
 */
import { z } from 'zod';

export const stdioUpstreamSchema = z.object({
  command: z.string().min(1).describe('Program to run, such as `npx` or `uvx` (looked up on PATH).'),
  args: z.array(z.string()).default([]).describe('Arguments of the program.'),
  env: z.record(z.string(), z.string()).default({}).describe('Extra environment variables for the process.'),
  cwd: z.string().optional().describe('Working directory of the process; the gateway\'s by default.'),
  mode: z
    .enum(['shared', 'per-user'])
    .default('shared')
    .describe('`shared`: one process for everyone. `per-user`: one process per signed-in user, started on first use.'),
  idleTimeout: z.number().int().positive().default(900).describe('Per-user mode: a process idle this many seconds is stopped.'),
  maxProcesses: z.number().int().positive().default(50).describe('Per-user mode: most processes running at once; a new user beyond it gets a JSON-RPC error.'),
});

export type StdioUpstreamConfig = z.output<typeof stdioUpstreamSchema>;
