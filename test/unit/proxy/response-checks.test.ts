/**
 * The proxy's response rules as pure functions: which responses are held and checked
 * (upstream-response.ts), and how an SSE answer is watched for the requests it still owes
 * (sse-watch.ts). The same rules run end to end in misbehaving-upstream.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { SseAnswerWatch } from '../../../src/proxy/sse-watch.ts';
import { ANSWER_CHECK_MAX_BYTES, carriesRequest, jsonAnswerProblem, ResponseMode, responseMode } from '../../../src/proxy/upstream-response.ts';

const answer = (id: number | string) => ({ jsonrpc: '2.0', id, result: {} });
const body = (value: unknown) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value));

describe('responseMode', () => {
  it('streams SSE, checks 2xx JSON answers to POSTs with requests, refuses other types there, holds the rest', () => {
    const json = { 'content-type': 'application/json; charset=utf-8' };
    assert.equal(responseMode(200, { 'content-type': 'text/event-stream' }, true), ResponseMode.STREAM);
    assert.equal(responseMode(200, { 'content-type': 'Text/Event-Stream; charset=utf-8' }, false), ResponseMode.STREAM);
    assert.equal(responseMode(200, json, true), ResponseMode.HOLD_CHECK_JSON);
    assert.equal(responseMode(200, { 'content-type': 'application/jsonp' }, true), ResponseMode.REFUSE);
    assert.equal(responseMode(200, { 'content-type': 'text/event-streams' }, true), ResponseMode.REFUSE);
    assert.equal(responseMode(200, { 'content-type': 'text/html' }, true), ResponseMode.REFUSE);
    assert.equal(responseMode(200, {}, true), ResponseMode.REFUSE);
    // 202/204 carry no answer; error statuses and unchecked exchanges (GET, legacy POSTs) pass as they are.
    assert.equal(responseMode(202, { 'content-type': 'text/plain' }, true), ResponseMode.HOLD);
    assert.equal(responseMode(204, {}, true), ResponseMode.HOLD);
    assert.equal(responseMode(404, { 'content-type': 'text/plain' }, true), ResponseMode.HOLD);
    assert.equal(responseMode(500, json, true), ResponseMode.HOLD);
    assert.equal(responseMode(200, { 'content-type': 'text/html' }, false), ResponseMode.HOLD);
    // A compressed JSON answer cannot be checked without decompressing it; it passes as it is.
    assert.equal(responseMode(200, { ...json, 'content-encoding': 'gzip' }, true), ResponseMode.HOLD);
    assert.equal(responseMode(200, { ...json, 'content-encoding': 'identity' }, true), ResponseMode.HOLD_CHECK_JSON);
  });
});

describe('carriesRequest', () => {
  it('is true only when a request (method and id) is among the messages', () => {
    const request = { jsonrpc: '2.0', id: 1, method: 'ping' } as const;
    const notification = { jsonrpc: '2.0', method: 'notifications/initialized' } as const;
    assert.equal(carriesRequest(request), true);
    assert.equal(carriesRequest([notification, request]), true);
    assert.equal(carriesRequest(notification), false);
    assert.equal(carriesRequest([notification, answer(3) as never]), false);
    assert.equal(carriesRequest(undefined), false, 'an unread body: nothing known to be owed');
  });
});

describe('jsonAnswerProblem', () => {
  it('accepts one JSON-RPC message or a batch, and names what is wrong otherwise', () => {
    assert.equal(jsonAnswerProblem(body(answer(1))), undefined);
    assert.equal(jsonAnswerProblem(body([answer(1), { jsonrpc: '2.0', id: 'x', error: { code: -1, message: 'no' } }])), undefined);
    assert.equal(jsonAnswerProblem(body('{"jsonrpc":"2.0","id":')), 'the body is not valid JSON');
    assert.equal(jsonAnswerProblem(body('<html></html>')), 'the body is not valid JSON');
    assert.equal(jsonAnswerProblem(body({ hello: 'world' })), 'the body is not a JSON-RPC message');
    assert.equal(jsonAnswerProblem(body([])), 'the body is an empty batch');
    assert.equal(jsonAnswerProblem(body([answer(1), 7])), 'a batch member is not a JSON-RPC message');
  });

  it('checks only the framing of an answer above the parse limit', () => {
    const big = { jsonrpc: '2.0', id: 1, result: { text: 'x'.repeat(ANSWER_CHECK_MAX_BYTES) } };
    assert.equal(jsonAnswerProblem(body(`\n${JSON.stringify(big)}\r\n`)), undefined);
    assert.equal(jsonAnswerProblem(body(`<html>${'x'.repeat(ANSWER_CHECK_MAX_BYTES)}</html>`)), 'the body is not a JSON object or array');
    assert.equal(jsonAnswerProblem(body(JSON.stringify(big).slice(0, -3))), 'the body is not a JSON object or array');
  });
});

/** Feeds `text` to a watch in pieces of `size` bytes (cutting multibyte characters on purpose). */
function feed(watch: SseAnswerWatch, text: string, size: number): void {
  const bytes = Buffer.from(text, 'utf8');
  for (let i = 0; i < bytes.length; i += size) watch.push(bytes.subarray(i, i + size));
}

/** What a client's SSE parser makes of the stream plus the watch's closing events. */
function clientEvents(stream: string): EventSourceMessage[] {
  const events: EventSourceMessage[] = [];
  const parser = createParser({ onEvent: (event) => events.push(event) });
  parser.feed(stream);
  return events;
}

describe('SseAnswerWatch', () => {
  it('crosses off answered requests across chunk, UTF-8 and CRLF boundaries, batches included', () => {
    const watch = new SseAnswerWatch([1, '1', 'ü', 4]);
    const stream = [
      `data: ${JSON.stringify({ jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: 1, progress: 1, message: 'héllo ✓' } })}\r\n\r\n`,
      `event: message\r\ndata: ${JSON.stringify(answer('ü'))}\r\n\r\n`,
      `data: ${JSON.stringify([answer(1), { jsonrpc: '2.0', id: 4, error: { code: -1, message: 'no' } }])}\n\n`,
      // Not answers: another event type, a request from the server with a colliding id.
      `event: other\ndata: ${JSON.stringify(answer('1'))}\n\n`,
      `data: ${JSON.stringify({ jsonrpc: '2.0', id: '1', method: 'sampling/createMessage', params: {} })}\n\n`,
    ].join('');
    feed(watch, stream, 3);
    assert.deepEqual(watch.unanswered, ['1'], '"1" and 1 are different ids');
  });

  it('owes nothing once the stream is resumable (an event carried an id)', () => {
    const watch = new SseAnswerWatch([1]);
    feed(watch, 'id: ev-1\ndata: \n\n', 100);
    assert.deepEqual(watch.unanswered, []);
    assert.equal(watch.closingEvents(-32000, 'closed'), '');
  });

  it('closes a half-sent event as a discarded one, then answers each unanswered request', () => {
    for (const [sent, what] of [
      ['data: {"jsonrpc":"2.0","id":7,"res', 'mid-line'],
      ['event: message\ndata: {"jsonrpc":"2.0",\n', 'mid-event, at a line end'],
      ['event: message\r', 'after a lone CR'],
      ['', 'nothing sent yet'],
    ] as const) {
      const watch = new SseAnswerWatch([7, 'eight']);
      feed(watch, sent, 5);
      const events = clientEvents(sent + watch.closingEvents(-32000, 'closed'));
      assert.deepEqual(
        events.filter((event) => event.event === undefined || event.event === 'message').map((event) => JSON.parse(event.data)),
        [
          { jsonrpc: '2.0', id: 7, error: { code: -32000, message: 'closed' } },
          { jsonrpc: '2.0', id: 'eight', error: { code: -32000, message: 'closed' } },
        ],
        what,
      );
      assert.deepEqual(watch.unanswered, [], `${what}: each request is answered once`);
    }
  });
});
