/**
 * `/healthz` (liveness) and `/readyz` (readiness), unauthenticated and cheap (docs/operations.md).
 *
 * Liveness says only that the process answers. Readiness runs named checks (storage reachable, keys
 * loaded, each identity provider's discovery loaded once) and answers 503 while any fails or while
 * the gateway drains at shutdown. The body names each check with `ok` or `fail` and nothing more:
 * no error text, host or version, since anyone who can reach the port can read it.
 *
 * Results are kept for a short time (separately for success and failure), and concurrent probes
 * share one run, so a flood of `/readyz` costs the storage at most one ping per period.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Clock } from '../core/clock.ts';
import { systemClock } from '../core/clock.ts';

export interface ReadinessCheck {
  /** Shown in the body: `storage`, `keys`, `idp:<id>`. */
  readonly name: string;
  /** Resolves when healthy; rejects (or throws) when not. */
  run(): Promise<void> | void;
}

export interface ReadinessOptions {
  checks: readonly ReadinessCheck[];
  /** True while the gateway drains at shutdown: never ready then. */
  draining: () => boolean;
  clock?: Clock;
  /** How long a result is reused, in milliseconds. */
  cacheMs?: number;
  /** A check that has not answered by then counts as failed (a storage that hangs is not ready). */
  timeoutMs?: number;
}

export type CheckStatus = 'ok' | 'fail';

export interface ReadinessReport {
  status: 'ready' | 'not_ready' | 'draining';
  checks: Record<string, CheckStatus>;
}

const HEADERS = { 'content-type': 'application/json', 'cache-control': 'no-store' };

export class Readiness {
  readonly #checks: readonly ReadinessCheck[];
  readonly #draining: () => boolean;
  readonly #clock: Clock;
  readonly #cacheMs: number;
  readonly #timeoutMs: number;
  #cached: { at: number; checks: Record<string, CheckStatus> } | undefined;
  #running: Promise<Record<string, CheckStatus>> | undefined;

  constructor(options: ReadinessOptions) {
    this.#checks = options.checks;
    this.#draining = options.draining;
    this.#clock = options.clock ?? systemClock;
    this.#cacheMs = options.cacheMs ?? 1_000;
    this.#timeoutMs = options.timeoutMs ?? 2_000;
  }

  async report(): Promise<ReadinessReport> {
    const checks = await this.#results();
    if (this.#draining()) return { status: 'draining', checks };
    return { status: Object.values(checks).every((status) => status === 'ok') ? 'ready' : 'not_ready', checks };
  }

  /** GET/HEAD /readyz: 200 when ready, else 503. */
  readonly handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const report = await this.report();
    const body = JSON.stringify(report);
    res.writeHead(report.status === 'ready' ? 200 : 503, { ...HEADERS, 'content-length': Buffer.byteLength(body) });
    res.end(req.method === 'HEAD' ? undefined : body);
  };

  #results(): Promise<Record<string, CheckStatus>> {
    const now = this.#clock.now();
    if (this.#cached !== undefined && now - this.#cached.at < this.#cacheMs) return Promise.resolve(this.#cached.checks);
    this.#running ??= this.#runAll().then((checks) => {
      this.#cached = { at: this.#clock.now(), checks };
      this.#running = undefined;
      return checks;
    });
    return this.#running;
  }

  async #runAll(): Promise<Record<string, CheckStatus>> {
    const results = await Promise.all(this.#checks.map((check) => this.#runOne(check)));
    const checks: Record<string, CheckStatus> = {};
    this.#checks.forEach((check, index) => {
      checks[check.name] = results[index] as CheckStatus;
    });
    return checks;
  }

  async #runOne(check: ReadinessCheck): Promise<CheckStatus> {
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<CheckStatus>((resolve) => {
      timer = setTimeout(() => resolve('fail'), this.#timeoutMs);
      timer.unref();
    });
    const ran = (async () => {
      await check.run();
      return 'ok' as const;
    })().catch(() => 'fail' as const);
    const status = await Promise.race([ran, timedOut]);
    clearTimeout(timer);
    return status;
  }
}

/** GET/HEAD /healthz: the process is alive and its event loop answers. */
export function handleLiveness(req: IncomingMessage, res: ServerResponse): void {
  const body = '{"status":"ok"}';
  res.writeHead(200, { ...HEADERS, 'content-length': body.length });
  res.end(req.method === 'HEAD' ? undefined : body);
}
