/**
 * The audit trail of the admin commands (docs/admin.md, "Audit"): every change an operator makes (a
 * client deleted, grants revoked) is one log line with `event: 'admin.…'`, who ran it and what it did,
 * through the gateway's logger (src/observability/logger.ts, with its redaction), so whatever collects
 * the gateway's logs by event name collects these too.
 *
 * The lines go to stderr, since stdout is the command's answer (a table, or JSON a script parses), and
 * when `audit.destination` names a file they are appended to that file too, where the gateways write
 * their audit stream (docs/audit.md), so one file holds every security decision. Both synchronously,
 * so they are written before the process exits. They are written at `info` even when the configured
 * `log.level` is quieter: a level chosen to keep request noise down must not drop the record of a
 * revocation.
 */
import { hostname, userInfo } from 'node:os';
import { pino } from 'pino';
import type { GatewayConfig } from '../config/schema.ts';
import { createLogger, type Logger } from '../observability/logger.ts';

/** pino's levels from most to least verbose; the audit logger is never less verbose than `info`. */
const VERBOSE_FIRST = ['trace', 'debug', 'info'];

/** `audit.destination` values that are not a file (src/observability/audit.ts). */
const NOT_A_FILE = new Set(['stdout', 'stderr', 'off']);

export function adminAuditLogger(config: Pick<GatewayConfig, 'log'> & { audit?: Pick<GatewayConfig['audit'], 'destination'> }): Logger {
  const level = VERBOSE_FIRST.includes(config.log.level) ? config.log.level : 'info';
  const stderr = pino.destination({ fd: 2, sync: true });
  const file = config.audit?.destination;
  if (file === undefined || NOT_A_FILE.has(file)) return createLogger(level, stderr);
  const appended = pino.destination({ dest: file, sync: true, mkdir: true, append: true });
  return createLogger(
    level,
    pino.multistream([
      { level: 'trace', stream: stderr },
      { level: 'trace', stream: appended },
    ]),
  );
}

/** Who ran the command: the OS account, the account `sudo` was run from, the host. */
export interface AdminActor {
  actor: string;
  sudoUser?: string;
  host: string;
}

export function currentActor(env: NodeJS.ProcessEnv = process.env): AdminActor {
  let actor: string;
  try {
    actor = userInfo().username;
  } catch {
    // A uid with no passwd entry (common in containers) has no name; its number still identifies it.
    actor = typeof process.getuid === 'function' ? `uid ${process.getuid()}` : 'unknown';
  }
  return { actor, ...(env.SUDO_USER ? { sudoUser: env.SUDO_USER } : {}), host: hostname() };
}
