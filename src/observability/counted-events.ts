/**
 * A logger that hands every audit event (a logged object with an `event` field) to a counter before
 * logging it. The gateway already logs each authorization decision as such an event (see
 * `auditProviderEvents` in src/authorization/provider.ts and the interaction steps), so counting at
 * the logger is one place instead of a metric call beside every log call, and a new event needs one
 * line in metrics.ts to be counted.
 *
 * Counting happens before the level check, so `log.level: warn` does not silently stop the
 * `logins_total` counter. The wrapper inherits everything else from the logger it wraps; the rooms
 * log through it directly (none of them makes child loggers, whose methods would bypass it).
 */
import type { Logger } from './logger.ts';

const LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'] as const;

export function countingEvents(logger: Logger, count: (fields: Readonly<Record<string, unknown>>) => void): Logger {
  const counted = Object.create(logger) as Logger;
  for (const level of LEVELS) {
    const log = (first: unknown, ...rest: unknown[]) => {
      if (typeof first === 'object' && first !== null && typeof (first as { event?: unknown }).event === 'string') {
        count(first as Record<string, unknown>);
      }
      return (logger[level] as (...args: unknown[]) => void)(first, ...rest);
    };
    Object.defineProperty(counted, level, { value: log, writable: true, configurable: true });
  }
  return counted;
}
