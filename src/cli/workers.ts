/**
 * `workers: N`: N gateway processes on one host (node:cluster), one core each. The primary only
 * supervises: it forks the workers, which run `serve` exactly as a single process does and share the
 * listening socket (the primary accepts connections and hands them round-robin to the workers; a
 * keep-alive connection stays with its worker). Everything else they share goes through storage, as
 * replicas do (docs/storage.md): the SQLite file (WAL, one writer at a time) or Redis. Per worker:
 * the token cache, the revoked-grant list and the signing-key ring (each polls storage), and the
 * stdio servers it spawns (docs/performance.md, "Workers").
 *
 * The first worker starts alone, so first-start work (keys and secrets created, stored rows
 * migrated) happens once; the others follow when it listens. A worker that dies is replaced (not
 * faster than once a second). SIGTERM or SIGINT to the primary is passed to every worker (as a message), which
 * shuts down and drains as a single process does; the primary exits when they all have.
 */
import cluster, { type Worker } from 'node:cluster';
import type { Writable } from 'node:stream';

const RESTART_DELAY_MS = 1_000;

export function isClusterWorker(): boolean {
  return cluster.isWorker;
}

/** The message the primary sends each worker to shut down (drain, as on SIGTERM). */
const SHUTDOWN_MESSAGE = 'mcp-oauth-gateway:shutdown';

/** In a worker, calls `stop` when the primary asks it to shut down; elsewhere does nothing. */
export function onPrimaryShutdown(stop: () => void): void {
  if (!cluster.isWorker) return;
  process.on('message', (message) => {
    if (message === SHUTDOWN_MESSAGE) stop();
  });
}

/** A worker whose gateway has closed lets go of the primary (the IPC channel would keep it alive). */
export function leaveCluster(): void {
  cluster.worker?.disconnect();
}

/** Runs the primary until every worker has exited after a signal; the exit code of `serve`. */
export async function runPrimary(count: number, io: { stderr: Writable; stdout: Writable }): Promise<number> {
  let stopping = false;
  const live = new Set<Worker>();
  let allGone: () => void = () => undefined;
  const fork = (): Worker => {
    const worker = cluster.fork();
    live.add(worker);
    worker.once('exit', (code, signal) => {
      live.delete(worker);
      if (stopping) {
        if (live.size === 0) allGone();
        return;
      }
      io.stderr.write(`worker ${worker.id} exited (${signal ?? `code ${code}`}); starting another\n`);
      setTimeout(() => {
        if (!stopping) fork();
      }, RESTART_DELAY_MS).unref();
    });
    return worker;
  };
  const stopped = new Promise<void>((resolve) => {
    allGone = resolve;
  });
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    if (live.size === 0) allGone();
    // A message, not a signal: the worker tells it apart from a Ctrl-C that reached it as well.
    for (const worker of live) {
      if (worker.isConnected()) worker.send(SHUTDOWN_MESSAGE);
      else worker.process.kill('SIGTERM');
    }
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);

  // The first worker alone, then the rest once it listens (first-start work done once).
  const first = fork();
  const started = await new Promise<boolean>((resolve) => {
    first.once('listening', () => resolve(true));
    first.once('exit', () => resolve(false));
  });
  if (!started) {
    // It could not start (its reason is on stderr); neither would another.
    stopping = true;
    return 1;
  }
  const rest = Array.from({ length: count - 1 }, () => fork());
  await Promise.all(rest.map((worker) => new Promise((resolve) => worker.once('listening', resolve).once('exit', resolve))));
  io.stdout.write(`mcp-oauth-gateway: ${count} workers started\n`);
  await stopped;
  return 0;
}
