/**
 * The one capped body reader, against real HTTP requests and real fetched responses: under the cap
 * the body arrives whole, past it every form fails with ERR_HTTP_BODY_TOO_LARGE and the client still
 * receives the 413.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, request, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it, type TestContext } from 'node:test';
import { fetch as undiciFetch } from 'undici';
import { ErrorCode, hasErrorCode } from '../../../src/core/errors.ts';
import { cappedBodyStream, readBody, readCappedBody, readCappedResponse } from '../../../src/http/body.ts';
import { OAuthError } from '../../../src/http/errors.ts';

const LIMIT = 1_000;

/** A server whose handler's outcome (body length or error code) is answered as text, 413 for the cap. */
async function serve(t: TestContext, read: (req: IncomingMessage) => Promise<Buffer>): Promise<string> {
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    read(req).then(
      (body) => res.end(`read ${body.length}`),
      (error: unknown) => {
        res.writeHead(hasErrorCode(error, ErrorCode.HTTP_BODY_TOO_LARGE) ? 413 : 500, { connection: 'close' });
        res.end(String((error as { code?: unknown }).code));
      },
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
}

/** Sends `chunks` (chunked unless `declared` is given) and returns the answer. */
function post(url: string, chunks: Buffer[], declared?: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = declared === undefined ? { 'transfer-encoding': 'chunked' } : { 'content-length': declared };
    const req = request(url, { method: 'POST', headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    // The server may answer 413 and close while the upload is still going: that is the point.
    req.on('error', (error: NodeJS.ErrnoException) => (error.code === 'EPIPE' || error.code === 'ECONNRESET' ? undefined : reject(error)));
    for (const chunk of chunks) req.write(chunk);
    req.end();
  });
}

describe('readCappedBody', () => {
  it('returns a body up to the cap whole, in one or many chunks', async (t) => {
    const url = await serve(t, (req) => readCappedBody(req, LIMIT));
    assert.deepEqual(await post(url, [Buffer.alloc(LIMIT, 0x61)], LIMIT), { status: 200, body: `read ${LIMIT}` });
    assert.deepEqual(await post(url, [Buffer.alloc(400), Buffer.alloc(400), Buffer.alloc(200)]), { status: 200, body: `read ${LIMIT}` });
    assert.deepEqual(await post(url, [], 0), { status: 200, body: 'read 0' });
  });

  it('fails a chunked body one byte past the cap, and the client still gets the 413', async (t) => {
    const url = await serve(t, (req) => readCappedBody(req, LIMIT));
    const answer = await post(url, [Buffer.alloc(600), Buffer.alloc(401)]);
    assert.deepEqual(answer, { status: 413, body: ErrorCode.HTTP_BODY_TOO_LARGE });
  });

  it('refuses a declared Content-Length over the cap without waiting for the body', async (t) => {
    const url = await serve(t, (req) => readCappedBody(req, LIMIT));
    // Only the headers are sent: the answer cannot depend on reading the body.
    const answer = await new Promise<number>((resolve, reject) => {
      const req = request(url, { method: 'POST', headers: { 'content-length': LIMIT + 1 } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.flushHeaders();
    });
    assert.equal(answer, 413);
  });
});

describe('cappedBodyStream', () => {
  it('passes chunks on as they come and fails once past the cap', async (t) => {
    const url = await serve(t, async (req) => {
      const parts: Buffer[] = [];
      for await (const chunk of cappedBodyStream(req, LIMIT)) parts.push(chunk as Buffer);
      return Buffer.concat(parts);
    });
    assert.deepEqual(await post(url, [Buffer.alloc(500), Buffer.alloc(500)]), { status: 200, body: `read ${LIMIT}` });
    assert.deepEqual(await post(url, [Buffer.alloc(500), Buffer.alloc(501)]), { status: 413, body: ErrorCode.HTTP_BODY_TOO_LARGE });
  });
});

describe('readBody (authorization server)', () => {
  it('turns the cap into the OAuth error answered with 413', async (t) => {
    const url = await serve(t, (req) =>
      readBody(req, LIMIT).catch((error: unknown) => {
        assert.ok(error instanceof OAuthError);
        assert.equal(error.status, 413);
        assert.equal(error.error, 'invalid_request');
        throw Object.assign(new Error('mapped'), { code: ErrorCode.HTTP_BODY_TOO_LARGE });
      }),
    );
    assert.equal((await post(url, [Buffer.alloc(LIMIT + 5)])).status, 413);
  });
});

describe('readCappedResponse', () => {
  it('reads a fetched body up to the cap and fails past it', async (t) => {
    const server = createServer((_req, res) => res.end(Buffer.alloc(5_000, 0x62)));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    t.after(() => {
      server.closeAllConnections();
      server.close();
    });
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
    const whole = await readCappedResponse((await undiciFetch(url)).body as ReadableStream<Uint8Array>, 5_000);
    assert.equal(whole.toString('utf8'), 'b'.repeat(5_000));
    await assert.rejects(readCappedResponse((await undiciFetch(url)).body as ReadableStream<Uint8Array>, 4_999), (error: unknown) =>
      hasErrorCode(error, ErrorCode.HTTP_BODY_TOO_LARGE),
    );
    assert.equal((await readCappedResponse(null, 10)).length, 0);
  });
});
