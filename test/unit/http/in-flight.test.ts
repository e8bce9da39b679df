/**
 * The drain (src/http/in-flight.ts) on a real node:http server: a standalone SSE stream is ended
 * cleanly at once, a request still running at the deadline is cut, a request that finishes in time
 * is untouched, and requests arriving meanwhile on an open connection are told to close it.
 */
import assert from 'node:assert/strict';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { InFlightRequests } from '../../../src/http/in-flight.ts';
import { markEventStream } from '../../../src/observability/mcp-requests.ts';

describe('requests in flight', () => {
  it('ends SSE streams cleanly, lets quick requests finish, cuts what outlives the deadline', async () => {
    const inFlight = new InFlightRequests();
    let finishSlow: (() => void) | undefined;
    const server = createServer(
      inFlight.track((req, res) => {
        if (req.url === '/sse') {
          res.writeHead(200, { 'content-type': 'text/event-stream' });
          markEventStream(res);
          res.write('event: message\ndata: {}\n\n');
        } else if (req.url === '/slow') {
          finishSlow = () => res.end('done');
        } else if (req.url === '/hang') {
          // never answers
        } else {
          res.end('ok');
        }
      }),
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const sse = await fetch(`${base}/sse`);
      const sseText = sse.text();
      const slow = fetch(`${base}/slow`).then((r) => r.text());
      const hang = fetch(`${base}/hang`).then(
        () => 'answered',
        (error: unknown) => ((error as { cause?: { code?: string } }).cause?.code ?? 'failed') as string,
      );
      while (inFlight.size < 3 || finishSlow === undefined) await new Promise((resolve) => setImmediate(resolve));

      const drained = inFlight.drain(Date.now() + 300);
      assert.equal(inFlight.draining, true);
      // The stream ends (cleanly: text() resolves) while the others still run.
      assert.equal(await sseText, 'event: message\ndata: {}\n\n');
      finishSlow();
      assert.equal(await slow, 'done');
      const outcome = await drained;
      assert.deepEqual(outcome, { finished: 1, streamsEnded: 1, cut: 1 });
      assert.equal(await hang, 'UND_ERR_SOCKET');
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });

  it('asks clients on open connections to close them once draining', async () => {
    const inFlight = new InFlightRequests();
    const server = createServer(inFlight.track((_req, res) => res.end('ok')));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    const port = (server.address() as AddressInfo).port;
    const get = () =>
      new Promise<string | undefined>((resolve, reject) => {
        request({ port, host: '127.0.0.1', path: '/', headers: { connection: 'keep-alive' } }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.headers.connection));
        })
          .on('error', reject)
          .end();
      });
    try {
      assert.equal(await get(), 'keep-alive');
      await inFlight.drain(Date.now() + 1_000);
      assert.equal(await get(), 'close');
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });
});
