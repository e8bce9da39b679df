/**
 * The requests the server is answering right now, and the drain that lets them finish at shutdown
 * (docs/operations.md, "Graceful shutdown").
 *
 * Every request is tracked from its arrival to its response's `close` (a Set and one shared listener:
 * no closure per request). On `drain`:
 * - requests that arrive on connections still open get `Connection: close`, so clients reconnect
 *   elsewhere (the listener itself is closed by the caller);
 * - standalone SSE streams (GET), which never end on their own, are ended cleanly at once: the
 *   chunked body is terminated, so a client sees a finished stream and reconnects (MCP Streamable
 *   HTTP resumes on a new GET);
 * - every other request (a tool call, even one answering as an SSE stream) may finish until the
 *   deadline; whatever is left then is ended (SSE) or cut (anything else).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isEventStream } from '../observability/mcp-requests.ts';

export type RequestListener = (req: IncomingMessage, res: ServerResponse) => void;

export interface DrainOutcome {
  /** Requests that finished on their own during the drain. */
  finished: number;
  /** SSE streams the drain ended cleanly. */
  streamsEnded: number;
  /** Requests still running at the deadline, cut. */
  cut: number;
}

export class InFlightRequests {
  readonly #open = new Set<ServerResponse>();
  #draining = false;
  #settled: (() => void) | undefined;
  #streamsEnded = 0;
  readonly #onClose: (this: ServerResponse) => void;

  constructor() {
    const open = this.#open;
    const tracker = this;
    this.#onClose = function onClose(this: ServerResponse) {
      open.delete(this);
      if (tracker.#draining) tracker.#check();
    };
  }

  get draining(): boolean {
    return this.#draining;
  }

  get size(): number {
    return this.#open.size;
  }

  /** The server's request listener, with every request tracked until its response closes. */
  track(listener: RequestListener): RequestListener {
    const open = this.#open;
    const onClose = this.#onClose;
    return (req, res) => {
      open.add(res);
      res.on('close', onClose);
      if (this.#draining) res.shouldKeepAlive = false;
      listener(req, res);
      if (this.#draining) this.#check();
    };
  }

  /**
   * Lets the requests in flight finish until `deadlineMs` (epoch milliseconds of `now`), ending SSE
   * streams cleanly; resolves once none is left.
   */
  async drain(deadlineMs: number, now: () => number = Date.now): Promise<DrainOutcome> {
    this.#draining = true;
    const before = this.#open.size;
    for (const res of this.#open) if (!res.headersSent) res.shouldKeepAlive = false;
    const settled = new Promise<void>((resolve) => {
      this.#settled = resolve;
    });
    this.#check();
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<'expired'>((resolve) => {
      timer = setTimeout(() => resolve('expired'), Math.max(0, deadlineMs - now()));
    });
    const outcome = await Promise.race([settled, expired]);
    clearTimeout(timer);
    let cut = 0;
    if (outcome === 'expired') {
      for (const res of [...this.#open]) {
        if (isEventStream(res)) this.#endStream(res);
        else {
          cut++;
          res.destroy();
        }
      }
    }
    return { finished: Math.max(0, before - cut - this.#streamsEnded), streamsEnded: this.#streamsEnded, cut };
  }

  /** Ends standalone streams; resolves the drain once nothing is left. */
  #check(): void {
    for (const res of this.#open) if (res.req?.method === 'GET' && isEventStream(res)) this.#endStream(res);
    if (this.#open.size === 0) this.#settled?.();
  }

  #endStream(res: ServerResponse): void {
    if (res.writableEnded) return;
    this.#streamsEnded++;
    res.end();
  }
}
