/**
 * undici's Pool keeps every client it ever created; UpstreamPool (src/proxy/http-proxy.ts) swaps a
 * pool that holds far more clients than it has connected for a fresh one, so a burst of concurrent SSE
 * streams does not leave thousands of client objects behind for the life of the process.
 */
import assert from 'node:assert/strict';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { Dispatcher } from 'undici';
import { type UpstreamPool, UpstreamPools } from '../../../src/proxy/http-proxy.ts';

function get(pool: UpstreamPool, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    let status = 0;
    const handler: Dispatcher.DispatchHandler = {
      onRequestStart() {},
      onResponseStart(_controller, statusCode) {
        status = statusCode;
      },
      onResponseData() {},
      onResponseEnd() {
        resolve(status);
      },
      onResponseError(_controller, error) {
        reject(error);
      },
    };
    pool.dispatch({ origin: undefined as never, path, method: 'GET' }, handler);
  });
}

describe('upstream pool renewal', () => {
  const waiting: ServerResponse[] = [];
  let release: () => void = () => undefined;
  let burst = 0;
  const server = createServer((_req, res) => {
    waiting.push(res);
    if (waiting.length >= burst) release();
  });
  let url: string;
  const pools = new UpstreamPools({ renewIntervalMs: 3_600_000 });

  before(async () => {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`;
  });
  after(async () => {
    await pools.close();
    await new Promise((resolve) => server.close(resolve));
  });

  /** `count` requests held open together (one client each), then answered with `Connection: close`. */
  async function concurrent(pool: UpstreamPool, count: number): Promise<void> {
    burst = count;
    const allArrived = new Promise<void>((resolve) => {
      release = resolve;
    });
    const answers = Array.from({ length: count }, () => get(pool, '/mcp'));
    await allArrived;
    for (const res of waiting.splice(0)) res.writeHead(200, { connection: 'close', 'content-length': '0' }).end();
    assert.deepEqual(new Set(await Promise.all(answers)), new Set([200]));
  }

  it('keeps a pool of few clients, and renews one left with many idle clients', async () => {
    const pool = pools.get(url);
    await concurrent(pool, 10);
    assert.ok(pool.clientCount >= 10 && pool.clientCount < 64, `clients: ${pool.clientCount}`);
    assert.equal(pool.renewIfOversized(), false, 'ten clients are not worth renewing');
    await concurrent(pool, 100);
    assert.ok(pool.clientCount >= 100, `clients: ${pool.clientCount}`);
    // Their sockets close (Connection: close); undici still holds the client objects.
    const deadline = Date.now() + 10_000;
    while (!pool.renewIfOversized()) {
      assert.ok(Date.now() < deadline, 'the pool was never renewed');
      await new Promise((resolve) => setImmediate(resolve));
    }
    assert.equal(pool.clientCount, 0, 'new requests go to a fresh pool');
    await concurrent(pool, 1);
    assert.ok(pool.clientCount >= 1 && pool.clientCount <= 2);
  });
});
