/**
 * A stdio MCP server the gateway spawns and serves over Streamable HTTP (src/stdio/, docs/stdio.md).
 */
import { z } from 'zod';

/**
 * Environment variables a child inherits from the gateway by default: what `npx`/`uvx` and most
 * programs need to run, and nothing that could carry the gateway's own secrets (the gateway's
 * environment may hold client secrets or encryption keys; a child gets only what is listed here,
 * plus `env`, plus the user's IdP token when `idpToken.env` asks for it).
 */
export const DEFAULT_INHERITED_ENV = [
  'PATH',
  'HOME',
  'USER',
  'LOGNAME',
  'SHELL',
  'LANG',
  'LANGUAGE',
  'LC_ALL',
  'LC_CTYPE',
  'TZ',
  'TMPDIR',
  'TERM',
  'HTTP_PROXY',
  'HTTPS_PROXY',
  'NO_PROXY',
  'http_proxy',
  'https_proxy',
  'no_proxy',
  'NODE_EXTRA_CA_CERTS',
  'SSL_CERT_FILE',
  'SSL_CERT_DIR',
  'XDG_CACHE_HOME',
  'XDG_CONFIG_HOME',
  'XDG_DATA_HOME',
  'npm_config_cache',
  'npm_config_registry',
  'UV_CACHE_DIR',
  'UV_INDEX_URL',
  'SYSTEMROOT',
  'APPDATA',
  'LOCALAPPDATA',
  'USERPROFILE',
];

export const stdioUpstreamSchema = z.object({
  command: z.string().min(1).describe('Program to run, such as `npx` or `uvx` (looked up on PATH).'),
  args: z.array(z.string()).default([]).describe('Arguments of the program.'),
  env: z.record(z.string(), z.string()).default({}).describe('Extra environment variables for the process.'),
  inheritEnv: z
    .array(z.string().min(1))
    .default(DEFAULT_INHERITED_ENV)
    .describe(
      "Names of the gateway's own environment variables the process inherits (a safe baseline by default: PATH, HOME, locale, proxies, CA files). The rest of the gateway's environment is never passed on.",
    ),
  cwd: z.string().optional().describe("Working directory of the process; the gateway's by default."),
  mode: z
    .enum(['shared', 'per-user'])
    .default('shared')
    .describe('`shared`: one process for everyone. `per-user`: one process per signed-in user, started on first use.'),
  idleTimeout: z
    .number()
    .int()
    .positive()
    .default(900)
    .describe('Per-user mode: a process idle this many seconds is stopped (its client sessions stay open; the next request starts a new process).'),
  maxProcesses: z.number().int().positive().default(50).describe('Per-user mode: most processes running at once; a new user beyond it gets a JSON-RPC error.'),
  startTimeout: z
    .number()
    .int()
    .positive()
    .default(60)
    .describe('Seconds a new process has to answer `initialize` (includes `npx`/`uvx` downloading the package on first start).'),
  stopGracePeriod: z.number().positive().default(5).describe('Seconds between SIGTERM and SIGKILL when a process (and its process group) is stopped.'),
  restartBackoff: z
    .object({
      initialMs: z.number().int().positive().default(500).describe('Delay before the first restart after a crash, in milliseconds.'),
      maxMs: z.number().int().positive().default(30_000).describe('Longest delay between restarts; the delay doubles after each crash in a row up to this.'),
    })
    .default({ initialMs: 500, maxMs: 30_000 })
    .describe('Restart with exponential backoff after a process exits unexpectedly. A process that ran for a minute resets the count.'),
  recycleBeforeExpiry: z
    .number()
    .int()
    .nonnegative()
    .default(60)
    .describe(
      'Per-user mode with `idpToken.env`: a process whose IdP token expires within this many seconds is replaced, between requests, by one started with a fresh token.',
    ),
  sessionIdleTimeout: z
    .number()
    .int()
    .positive()
    .default(3600)
    .describe('A client session with no request and no open stream for this many seconds is forgotten (the client must initialize again).'),
});

export type StdioUpstreamConfig = z.output<typeof stdioUpstreamSchema>;
