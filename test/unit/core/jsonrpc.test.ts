/**
 * The one JSON-RPC module the proxy and the stdio bridge share: what counts as a message, the error
 * code table, and the error writer.
 */
import assert from 'node:assert/strict';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it, type TestContext } from 'node:test';
import { isJsonRpcMessage, isJsonRpcProblem, JsonRpcCode, jsonRpcMessageProblem, parseJsonRpcBody, sendJsonRpcError } from '../../../src/core/jsonrpc.ts';

describe('parseJsonRpcBody', () => {
  const problem = (text: string) => {
    const parsed = parseJsonRpcBody(text);
    return isJsonRpcProblem(parsed) ? parsed : undefined;
  };

  it('returns requests, notifications, responses and batches as parsed', () => {
    assert.deepEqual(parseJsonRpcBody('{"jsonrpc":"2.0","id":1,"method":"tools/list"}'), { jsonrpc: '2.0', id: 1, method: 'tools/list' });
    assert.equal(problem('{"jsonrpc":"2.0","method":"notifications/initialized"}'), undefined);
    assert.equal(problem('{"jsonrpc":"2.0","id":"s1","result":{}}'), undefined);
    assert.equal(problem('{"jsonrpc":"2.0","id":"s1","error":{"code":-1,"message":"no"}}'), undefined);
    const batch = parseJsonRpcBody('[{"jsonrpc":"2.0","id":1,"method":"a"},{"jsonrpc":"2.0","method":"b"}]');
    assert.ok(Array.isArray(batch) && batch.length === 2);
  });

  it('answers broken JSON with -32700 and other JSON with -32600 (JSON-RPC 2.0 §5.1)', () => {
    assert.deepEqual(problem('{'), { code: JsonRpcCode.PARSE_ERROR, message: 'Parse error: the request body is not valid JSON', id: null });
    assert.equal(problem('"text"')?.code, JsonRpcCode.INVALID_REQUEST);
    assert.equal(problem('null')?.code, JsonRpcCode.INVALID_REQUEST);
    assert.equal(problem('[]')?.code, JsonRpcCode.INVALID_REQUEST, 'an empty batch is invalid (§6)');
    assert.equal(problem('[{"jsonrpc":"2.0","id":1,"method":"a"},7]')?.code, JsonRpcCode.INVALID_REQUEST, 'one bad member spoils the batch');
    assert.equal(problem('{"jsonrpc":"1.0","id":1,"method":"a"}')?.code, JsonRpcCode.INVALID_REQUEST);
  });

  it('names the request id in the error when it could be read (§5), null otherwise', () => {
    assert.equal(problem('{"jsonrpc":"2.0","id":4}')?.id, 4);
    assert.equal(problem('{"jsonrpc":"1.0","id":"x","method":"a"}')?.id, 'x');
    assert.equal(problem('{"jsonrpc":"2.0","id":{"a":1},"method":"a"}')?.id, null);
  });
});

describe('request ids (MCP: a string or integer, never null)', () => {
  it('refuses a request with id null: not a request, and not a notification either (§4.1: no id member)', () => {
    const refused = jsonRpcMessageProblem({ jsonrpc: '2.0', id: null, method: 'tools/list' });
    assert.equal(refused?.code, JsonRpcCode.INVALID_REQUEST);
    assert.equal(refused?.id, null);
  });

  it('refuses ids that are objects, booleans or fractions', () => {
    for (const id of [{}, [], true, 1.5]) assert.equal(isJsonRpcMessage({ jsonrpc: '2.0', id, method: 'a' }), false, JSON.stringify(id));
  });

  it('accepts string and integer ids, including 0 and the empty string', () => {
    for (const id of ['', 'abc', 0, -3, 2 ** 40]) assert.equal(isJsonRpcMessage({ jsonrpc: '2.0', id, method: 'a' }), true, JSON.stringify(id));
  });

  it('accepts an error response with id null (§5: the id could not be read), not a result with id null', () => {
    assert.equal(isJsonRpcMessage({ jsonrpc: '2.0', id: null, error: { code: -32700, message: 'Parse error' } }), true);
    assert.equal(isJsonRpcMessage({ jsonrpc: '2.0', id: null, result: {} }), false);
    assert.equal(isJsonRpcMessage({ jsonrpc: '2.0', result: {} }), false);
  });
});

describe('JsonRpcCode', () => {
  it('gives every number one name, inside JSON-RPC ranges, and leaves the numbers MCP servers use alone', () => {
    const numbers = Object.values(JsonRpcCode);
    assert.equal(new Set(numbers).size, numbers.length, 'no number has two meanings');
    for (const code of numbers) assert.ok((code >= -32099 && code <= -32000) || (code >= -32700 && code <= -32600), String(code));
    assert.ok(!(numbers as number[]).includes(-32002), '-32002 is MCP\'s "Resource not found"');
    assert.ok(!(numbers as number[]).includes(-32042), '-32042 is the SDK\'s "URL elicitation required"');
  });
});

describe('sendJsonRpcError', () => {
  async function serve(t: TestContext, handler: Parameters<typeof createServer>[1]): Promise<string> {
    const server: Server = createServer(handler);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    t.after(() => server.close());
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  }

  function get(url: string): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
    return new Promise((resolve, reject) => {
      request(url, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        res.on('error', reject);
      })
        .on('error', reject)
        .end();
    });
  }

  it('writes status, the given headers, no-store and a JSON-RPC error body with the id', async (t) => {
    const url = await serve(t, (_req, res) => sendJsonRpcError(res, 413, JsonRpcCode.REQUEST_TOO_LARGE, 'too big', { connection: 'close' }, 'r1'));
    const answer = await get(url);
    assert.equal(answer.status, 413);
    assert.equal(answer.headers['content-type'], 'application/json');
    assert.equal(answer.headers['cache-control'], 'no-store');
    assert.equal(answer.headers.connection, 'close');
    assert.deepEqual(JSON.parse(answer.body), { jsonrpc: '2.0', id: 'r1', error: { code: JsonRpcCode.REQUEST_TOO_LARGE, message: 'too big' } });
  });

  it('only ends a response that has already started (a stream cannot get a second status line)', async (t) => {
    const url = await serve(t, (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('event: message\ndata: {}\n\n');
      sendJsonRpcError(res, 500, JsonRpcCode.INTERNAL_ERROR, 'late');
    });
    const answer = await get(url);
    assert.equal(answer.status, 200);
    assert.equal(answer.body, 'event: message\ndata: {}\n\n');
  });
});
