/**
 * The byte-level JSON-RPC check (src/core/jsonrpc-scan.ts) against the full parse it stands in for
 * (`parseJsonRpcBody`): on every body it accepts, the full parse must accept it too and read the same
 * ids, methods and kinds of message; it may decline anything (the proxy then runs the full parse).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { isJsonRpcProblem, isRequest, isResponse, parseJsonRpcBody } from '../../../src/core/jsonrpc.ts';
import { type ScannedMessage, scanJsonRpcBody } from '../../../src/core/jsonrpc-scan.ts';

function summary(parsed: JSONRPCMessage | JSONRPCMessage[]): unknown {
  const one = (message: JSONRPCMessage) => ({
    request: isRequest(message),
    response: isResponse(message),
    id: (message as { id?: unknown }).id,
    method: (message as { method?: unknown }).method,
  });
  return Array.isArray(parsed) ? parsed.map(one) : one(parsed);
}

/** The scanner's answer agrees with the full parse wherever it gives one. */
function agrees(text: string | Buffer): 'accepted' | 'declined' {
  const body = typeof text === 'string' ? Buffer.from(text) : text;
  const scanned = scanJsonRpcBody(body);
  if (scanned === undefined) return 'declined';
  const full = parseJsonRpcBody(body.toString('utf8'));
  assert.ok(!isJsonRpcProblem(full), `scanner accepted what the full parse refuses: ${JSON.stringify(body.toString('utf8'))}`);
  assert.deepEqual(summary(scanned), summary(full), body.toString('utf8'));
  return 'accepted';
}

describe('byte-level JSON-RPC check', () => {
  it('accepts the common messages with the full parse reading', () => {
    const good = [
      '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"text":"bench"}}}',
      ' {"jsonrpc" : "2.0", "method":"notifications/initialized"}\n',
      '{"jsonrpc":"2.0","id":"a-b","result":{"content":[{"type":"text","text":"ok"}]}}',
      '{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"x"}}',
      '[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","method":"n"}]',
      '{"jsonrpc":"2.0","id":-0,"method":"m","params":[1,2.5e-3,true,false,null,"\\u00e9\\n"]}',
      '{"jsonrpc":"2.0","id":1e2,"method":"m"}',
      '{"jsonrpc":"2.0","id":"é","method":"ünï"}',
    ];
    for (const text of good) assert.equal(agrees(text), 'accepted', text);
  });

  it('declines every body the full parse refuses', () => {
    const bad = [
      '',
      '{',
      '{}',
      '[]',
      'null',
      '"x"',
      '{"jsonrpc":"2.0","id":1,"method":"m"',
      '{"jsonrpc":"2.0","id":1,"method":"m"}x',
      '{"jsonrpc":"2.0","id":1,"method":"m",}',
      '{"jsonrpc":"1.0","id":1,"method":"m"}',
      '{"jsonrpc":"2.0","id":null,"method":"m"}',
      '{"jsonrpc":"2.0","id":1.5,"method":"m"}',
      '{"jsonrpc":"2.0","id":true,"method":"m"}',
      '{"jsonrpc":"2.0","id":1}',
      '{"jsonrpc":"2.0","result":1}',
      '{"jsonrpc":"2.0","id":1,"method":"m","params":{"a":01}}',
      '{"jsonrpc":"2.0","id":1,"method":"m","params":"\\x"}',
      '{"jsonrpc":"2.0","id":1,"method":"m","params":"a\tb"}',
      '{"jsonrpc":"2.0","id":1,"method":"m","params":[1,]}',
      '{"jsonrpc":"2.0","id":1,"method":"m","params":tru}',
      '{"jsonrpc":"2.0","id":1,"method":"m","params":-}',
      '{"jsonrpc":"2.0","id":1,"method":"m","params":1.}',
      '{"jsonrpc":"2.0","id":1,"method":"m","params":1e}',
      '[{"jsonrpc":"2.0","id":1,"method":"m"},1]',
      '\ufeff{"jsonrpc":"2.0","id":1,"method":"m"}',
    ];
    for (const text of bad) assert.equal(agrees(text), 'declined', text);
  });

  it('declines what it would have to decode, and leaves it to the full parse', () => {
    // A repeated member (JSON.parse keeps the last), escapes in names or in the values it reads.
    assert.equal(agrees('{"jsonrpc":"2.0","id":1,"method":"a","method":"b"}'), 'declined');
    assert.equal(agrees('{"jsonrpc":"2.0","id":1,"m\\u0065thod":"a"}'), 'declined');
    assert.equal(agrees('{"jsonrpc":"2.0","id":"\\u0031","method":"a"}'), 'declined');
  });

  it('reads params only when asked, from the bytes', () => {
    const scanned = scanJsonRpcBody(Buffer.from('{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo","arguments":{}}}'));
    assert.deepEqual((scanned as { params?: unknown }).params, { name: 'echo', arguments: {} });
    const none = scanJsonRpcBody(Buffer.from('{"jsonrpc":"2.0","id":3,"method":"ping"}'));
    assert.equal((none as { params?: unknown }).params, undefined);
  });

  it('serialises and copies out as the parsed message: JSON.stringify and toPlain keep params and results', () => {
    // A consumer that writes a message out (a log line, the stdio bridge) must not lose `params`,
    // which lives behind a getter, nor see a response's result placeholder.
    const bodies = [
      '{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi","n":[1,2]}}}',
      '[{"jsonrpc":"2.0","method":"notifications/initialized"}, {"jsonrpc":"2.0","id":"a","result":{"tools":[{"name":"x"}]}}]',
      '{"jsonrpc":"2.0","id":3,"error":{"code":-32601,"message":"nope"}}',
    ];
    for (const body of bodies) {
      const scanned = scanJsonRpcBody(Buffer.from(body));
      assert.ok(scanned !== undefined, body);
      assert.deepEqual(JSON.parse(JSON.stringify(scanned)), JSON.parse(body));
      const messages = Array.isArray(scanned) ? scanned : [scanned];
      const plain = messages.map((message) => (message as unknown as ScannedMessage).toPlain());
      assert.deepEqual(Array.isArray(scanned) ? plain : plain[0], JSON.parse(body));
      assert.deepEqual({ ...plain[0] }, plain[0], 'a plain object: a spread keeps every member');
    }
  });

  it('agrees with the full parse on many generated and mutated bodies', () => {
    let seed = 42;
    const random = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const pieces = ['{', '}', '[', ']', ',', ':', '"', '\\', 'u', '0', '1', '-', '.', 'e', '+', ' ', '\n', 'true', 'null', 'f', '\u0001', 'é', '\u00ff'];
    const values = (depth: number): unknown => {
      switch (random(depth > 3 ? 5 : 8)) {
        case 0:
          return random(1000) - 500;
        case 1:
          return random(3) === 0 ? 1.5 : `s${random(9)}\n"`;
        case 2:
          return null;
        case 3:
          return random(2) === 0;
        case 4:
          return 'é\u2028';
        case 5:
          return [values(depth + 1), values(depth + 1)];
        default:
          return { a: values(depth + 1), [`k${random(3)}`]: values(depth + 1) };
      }
    };
    const message = (): Record<string, unknown> => {
      const out: Record<string, unknown> = {};
      if (random(10) > 0) out.jsonrpc = random(12) === 0 ? '1.0' : '2.0';
      const kind = random(4);
      if (kind <= 1) out.method = random(10) === 0 ? 7 : 'tools/call';
      if (kind !== 1 || random(5) === 0) out.id = [1, 'x', null, 2.5, true, -3, 'é'][random(7)];
      if (kind === 2) out.result = values(0);
      if (kind === 3) out.error = { code: -1, message: 'm' };
      if (random(2) === 0) out.params = values(0);
      return out;
    };
    let accepted = 0;
    let declined = 0;
    for (let n = 0; n < 20_000; n++) {
      const value = random(6) === 0 ? [message(), message()] : message();
      let text = JSON.stringify(value, null, random(3) === 0 ? 1 : undefined);
      // Mutate a third of them: insert, delete or replace a character.
      if (random(3) === 0) {
        const at = random(text.length + 1);
        const op = random(3);
        const piece = pieces[random(pieces.length)]!;
        text =
          op === 0
            ? text.slice(0, at) + piece + text.slice(at)
            : op === 1
              ? text.slice(0, at) + text.slice(at + 1)
              : text.slice(0, at) + piece + text.slice(at + 1);
      }
      if (agrees(text) === 'accepted') accepted++;
      else declined++;
    }
    // Both sides exercised: most good messages are taken by the fast path.
    assert.ok(accepted > 2_000 && declined > 2_000, `accepted ${accepted}, declined ${declined}`);
  });

  it('treats invalid UTF-8 inside strings as the full parse does', () => {
    const body = Buffer.concat([Buffer.from('{"jsonrpc":"2.0","id":1,"method":"m","params":"'), Buffer.from([0xc3, 0xff, 0x80]), Buffer.from('"}')]);
    agrees(body);
    const cut = Buffer.concat([Buffer.from('{"jsonrpc":"2.0","id":1,"method":"m","params":"'), Buffer.from([0xe2, 0x82]), Buffer.from('"}')]);
    agrees(cut);
  });
});
