/**
 * A proxied SSE stream ended by the shutdown drain (src/http/in-flight.ts): the client sees a clean
 * end, the gateway closes its request to the upstream at once (the upstream must not keep a stream
 * open for nobody), and the upstream's next events are dropped without an error, so the process
 * stays up.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { it } from 'node:test';
import { Pool } from 'undici';
import { InFlightRequests } from '../../../src/http/in-flight.ts';
import { createLogger } from '../../../src/observability/logger.ts';
import { UpstreamProxy } from '../../../src/proxy/http-proxy.ts';

it('ends a proxied SSE stream cleanly and closes the upstream request', async () => {
  let upstreamRequest: IncomingMessage | undefined;
  let ticker: NodeJS.Timeout | undefined;
  const upstream = createServer((req, res) => {
    upstreamRequest = req;
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write('event: message\ndata: {"n":0}\n\n');
    // The upstream keeps sending, as a busy server would.
    ticker = setInterval(() => res.write('event: message\ndata: {"n":1}\n\n'), 5);
    res.on('close', () => clearInterval(ticker));
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', () => resolve()));
  const upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/mcp`;
  const pool = new Pool(new URL(upstreamUrl).origin);
  const proxy = new UpstreamProxy({
    name: 'tools',
    url: upstreamUrl,
    timeoutMs: 5_000,
    maxRequestBytes: 1 << 20,
    dispatcher: pool,
    logger: createLogger('silent'),
  });
  const inFlight = new InFlightRequests();
  const gateway = createServer(
    inFlight.track((req, res) => proxy.forward(req, res, { subPath: '', search: '', dropHeaders: new Set(), addHeaders: [], responseHeaders: undefined })),
  );
  await new Promise<void>((resolve) => gateway.listen(0, '127.0.0.1', () => resolve()));
  try {
    const response = await fetch(`http://127.0.0.1:${(gateway.address() as AddressInfo).port}/mcp`, { headers: { accept: 'text/event-stream' } });
    assert.equal(response.status, 200);
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    await reader.read(); // the first event arrived: the stream is open end to end
    // The gateway aborting its request shows upstream as an aborted request ('error', then 'close').
    const upstreamReq = upstreamRequest as IncomingMessage;
    upstreamReq.on('error', () => {});
    const upstreamClosed = new Promise((resolve) => upstreamReq.once('close', resolve));
    const outcome = await inFlight.drain(Date.now() + 5_000);
    assert.deepEqual(outcome, { finished: 0, streamsEnded: 1, cut: 0 });
    // The client reads to a clean end (no error), whatever events were in flight.
    for (;;) if ((await reader.read()).done) break;
    await upstreamClosed;
  } finally {
    clearInterval(ticker);
    gateway.closeAllConnections();
    gateway.close();
    await pool.close();
    upstream.closeAllConnections();
    upstream.close();
  }
});
