/**
 * The audit stream (docs/audit.md): security decisions and one line per MCP call, as JSON lines on a
 * destination of their own, so they can be kept and shipped apart from operational logs.
 *
 * Two ways in, one rule each:
 * - Security events the rooms already log on the operational logger (`event: 'login.succeeded'`, …)
 *   are copied to the audit stream when their name starts with one of `AUDIT_EVENT_PREFIXES`
 *   (`auditHooks` below, installed by `createLogger`). The call sites stay as they are, so a new
 *   event in an audited family (`consent.*`, `admin.*`, …) is audited without anyone remembering to;
 *   the operational log keeps its copy, so operators lose nothing there. The copy is made whatever the
 *   operational level, so `log.level: warn` does not silence the audit.
 * - MCP calls and the MCP endpoint's refusals are written straight to the audit logger
 *   (src/resource-server/mcp-audit.ts), never to the operational one: that is the per-request line
 *   the hot path must keep out of operational logs.
 *
 * The audit logger redacts the same secret keys as the operational one (logger.ts); tool arguments
 * appear only for servers whose operator turned them on, with the configured keys redacted
 * (`redactArguments`).
 */
import { type Logger, pino } from 'pino';
import { REDACT_PATHS, REDACTED_KEYS } from './redaction.ts';

/**
 * Event names (prefixes) that belong to the audit stream: sign-in and consent, tokens, clients,
 * grants and revocation, forward-auth decisions, signing keys, administration, and MCP calls. Kept in
 * one place so what is audited can be read off one list. `revocation.` does not match
 * `revocation_list.` (an operational poll), by the dot.
 */
export const AUDIT_EVENT_PREFIXES: readonly string[] = [
  'login.',
  'consent.',
  'callback.',
  'authorization.',
  'sign_in.',
  'local.signin.',
  'token.',
  'refresh.',
  'client.',
  'cimd.',
  'grant.',
  'revocation.',
  'forward_auth.',
  'idp_token.reauthentication_required',
  'idp_token.refresh_refused',
  'signing_key.',
  'admin.',
  'mcp.',
  'rate_limit.',
];

export function isAuditEvent(name: string): boolean {
  for (const prefix of AUDIT_EVENT_PREFIXES) if (name.startsWith(prefix)) return true;
  return false;
}

/** Where audit lines go: a standard stream, a file (appended), or nowhere. */
export type AuditDestination = 'stdout' | 'stderr' | 'off' | (string & {});

/**
 * The audit logger. Every line carries `stream: "audit"`, so lines stay tellable apart even when a
 * platform merges the two streams. `sink` replaces the destination (tests read lines back from it).
 */
export function createAuditLogger(destination: AuditDestination, sink?: pino.DestinationStream): Logger {
  if (destination === 'off' && sink === undefined) return pino({ level: 'silent' });
  return pino(
    {
      level: 'info',
      base: { service: 'mcp-oauth-gateway', stream: 'audit' },
      redact: { paths: [...REDACT_PATHS], censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    sink ?? auditDestination(destination),
  );
}

/**
 * Lines are written in batches of up to 4 KiB (about ten calls) rather than one system call per call:
 * the stream is flushed at shutdown (app.ts) and at least every second (`startAuditFlush`), so a
 * crash (SIGKILL, power loss) loses at most that second's lines.
 */
const BATCH_BYTES = 4096;

function auditDestination(destination: string): pino.DestinationStream {
  if (destination === 'stdout') return pino.destination({ dest: 1, sync: false, minLength: BATCH_BYTES });
  if (destination === 'stderr') return pino.destination({ dest: 2, sync: false, minLength: BATCH_BYTES });
  // A file, appended to (its directory created). Rotation is left to the platform (logrotate with
  // copytruncate, or a log shipper that tails it).
  return pino.destination({ dest: destination, sync: false, mkdir: true, append: true, minLength: BATCH_BYTES });
}

/**
 * The logger of one server's MCP-call lines: `event` and `server` bound once (serialised once, not
 * per line), and pino's path redaction switched off. That redaction walks wildcard paths on every
 * line and costs some twenty times the line itself (bench/audit-line.ts); a call line carries only
 * fields the gateway sets (ids, names, numbers) and arguments already passed through
 * `redactArguments`, which covers every credential key at any depth, not just two levels.
 */
export function callAuditLogger(audit: Logger, server: string): Logger {
  return audit.child({ event: 'mcp.call', server }, { redact: { paths: [] } });
}

/** Flushes the audit stream's batch every `intervalMs` (see BATCH_BYTES); returns the stop function. */
export function startAuditFlush(audit: Logger, intervalMs = 1000): () => void {
  const timer = setInterval(() => audit.flush(), intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}

/** pino numeric levels back to method names, for the audit copy. */
const LEVEL_METHOD: Record<number, 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal'> = {
  10: 'trace',
  20: 'debug',
  30: 'info',
  40: 'warn',
  50: 'error',
  60: 'fatal',
};

/**
 * pino hooks for the operational logger: a line whose `event` is an audit event is also written to
 * `audit` (with the logger's child bindings, such as the server name); the operational copy is written
 * only at or above `operationalLevel` (the logger itself runs at `info` at least, so that audit events
 * logged at info reach this hook when operators chose `warn`).
 */
export function auditHooks(audit: Logger, operationalLevel: number): pino.LoggerOptions['hooks'] {
  return {
    logMethod(args, method, level) {
      const first = args[0] as unknown;
      if (typeof first === 'object' && first !== null && !(first instanceof Error)) {
        const name = (first as { event?: unknown }).event;
        if (typeof name === 'string' && isAuditEvent(name)) copyToAudit(audit, this, level, first as object, args);
      }
      if (level >= operationalLevel) method.apply(this, args);
    },
  };
}

function copyToAudit(audit: Logger, from: pino.Logger, level: number, fields: object, args: unknown[]): void {
  const bindings = from.bindings();
  const message = typeof args[1] === 'string' ? args[1] : undefined;
  const line = Object.keys(bindings).length === 0 ? fields : { ...bindings, ...fields };
  audit[LEVEL_METHOD[level] ?? 'info'](line, message);
}

/** How a server's call arguments are audited: off by default. */
export interface ArgumentAudit {
  include: boolean;
  /** Keys (any depth, case-insensitive) whose values are replaced by `[redacted]`. */
  redactKeys: ReadonlySet<string>;
}

export const NO_ARGUMENTS: ArgumentAudit = { include: false, redactKeys: new Set() };

export function argumentAudit(include: boolean, redactKeys: readonly string[]): ArgumentAudit {
  // The logger's secret keys are always redacted too: a `password` argument is never audited.
  return { include, redactKeys: new Set([...redactKeys, ...REDACTED_KEYS].map((key) => key.toLowerCase())) };
}

const MAX_DEPTH = 8;

/**
 * A copy of `value` with every configured key's value replaced, at any depth. Deeper than `MAX_DEPTH`
 * is cut rather than walked: arguments are the client's, and an audit line must stay bounded.
 */
export function redactArguments(value: unknown, keys: ReadonlySet<string>, depth = 0): unknown {
  if (typeof value !== 'object' || value === null) return value;
  if (depth >= MAX_DEPTH) return '[truncated]';
  if (Array.isArray(value)) return value.map((item) => redactArguments(item, keys, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [key, inner] of Object.entries(value)) out[key] = keys.has(key.toLowerCase()) ? '[redacted]' : redactArguments(inner, keys, depth + 1);
  return out;
}
