/**
 * A logger whose lines a test can read and wait for: stdio processes mark what they do (a stderr
 * line, a process stopped, a stream opened) only in the logs, so a test awaits the line instead of
 * polling or sleeping. Used by the stdio unit tests and the stdio end-to-end test.
 */
import { createAuditLogger } from '../../src/observability/audit.ts';
import { createLogger, type Logger } from '../../src/observability/logger.ts';

export type LogLine = Record<string, unknown>;

/**
 * Bounds a wait only so that a missing line fails the test with a name instead of hanging; it is
 * never how long a passing test waits.
 */
const GIVE_UP_MS = 15_000;

export class LogWatch {
  readonly lines: LogLine[] = [];
  readonly logger: Logger;
  readonly #waiters = new Set<{ match: (line: LogLine) => boolean; resolve: (line: LogLine) => void }>();

  /**
   * `audit`: the audit logger this logger copies audit events to (src/observability/audit.ts), as the
   * gateway's own logger does; another LogWatch's `auditLogger()` reads them back.
   */
  constructor(level = 'debug', audit?: Logger) {
    // pino writes each line synchronously to this destination, so a line is here once the call returns.
    this.logger = createLogger(level, { write: (chunk: string) => this.#add(chunk) }, audit);
  }

  /** A LogWatch reading the audit stream: its lines are what `createAuditLogger` writes. */
  static audit(): LogWatch & { audit: Logger } {
    const watch = new LogWatch('silent') as LogWatch & { audit: Logger };
    watch.audit = createAuditLogger('off', { write: (chunk: string) => watch.#add(chunk) });
    return watch;
  }

  /** True when a line already logged matches. */
  some(match: (line: LogLine) => boolean): boolean {
    return this.lines.some(match);
  }

  /** The first matching line, already logged or still to come. */
  first(match: (line: LogLine) => boolean, what: string): Promise<LogLine> {
    const seen = this.lines.find(match);
    return seen ? Promise.resolve(seen) : this.next(match, what);
  }

  /** The next matching line logged from now on (call it before triggering what logs it). */
  next(match: (line: LogLine) => boolean, what: string): Promise<LogLine> {
    return new Promise((resolve, reject) => {
      const giveUp = setTimeout(() => {
        this.#waiters.delete(waiter);
        reject(new Error(`no log line for ${what}`));
      }, GIVE_UP_MS);
      const waiter = {
        match,
        resolve: (line: LogLine) => {
          clearTimeout(giveUp);
          resolve(line);
        },
      };
      this.#waiters.add(waiter);
    });
  }

  #add(chunk: string): void {
    for (const text of chunk.split('\n')) {
      if (!text) continue;
      const line = JSON.parse(text) as LogLine;
      this.lines.push(line);
      for (const waiter of this.#waiters) {
        if (!waiter.match(line)) continue;
        this.#waiters.delete(waiter);
        waiter.resolve(line);
      }
    }
  }
}

/** Matches a log line by its `event` field and, optionally, further fields. */
export function event(name: string, fields: LogLine = {}): (line: LogLine) => boolean {
  return (line) => line.event === name && Object.entries(fields).every(([key, value]) => line[key] === value);
}
