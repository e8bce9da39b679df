/**
 * The request screen and the list-answer filter of `servers[].toolAccess`, on the messages and bytes a
 * server sends: SSE events cut at every byte, CRLF line ends, batches, completions. The rules come
 * from the real configuration schema; the grant is the token check's data for one person.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { toolAccessSchema } from '../../../src/config/schema/tool-access.ts';
import { ListAnswerFilter } from '../../../src/proxy/list-answer-filter.ts';
import type { GuardGrant } from '../../../src/resource-server/guard.ts';
import { ServerToolAccess } from '../../../src/resource-server/tool-policy.ts';

const rules = toolAccessSchema.parse({
  rules: [
    { tools: ['echo'], prompts: ['greet'], resources: ['file:///public/*'] },
    { tools: ['write'], scopes: ['files:write'] },
  ],
});
assert.ok(rules);
const access = new ServerToolAccess(rules, { resourceMetadataUrl: 'https://gw.example/.well-known/oauth-protected-resource/mcp', scopes: ['mcp'] });

function grant(scopes: string[]): GuardGrant {
  const token = { claims: { sub: 'corp:alice', client_id: 'c1', exp: 0 }, expiresAt: 0, scopes: new Set(scopes), kid: undefined, grantId: undefined };
  const user = { id: 'corp:alice', provider: 'corp', subject: 'alice', groups: [], createdAt: 0, lastLoginAt: 0 };
  return { ok: true, token, user, identity: {} as GuardGrant['identity'], idpToken: undefined } as GuardGrant;
}

const listAnswer = (id: number) => ({
  jsonrpc: '2.0',
  id,
  result: { tools: [{ name: 'echo' }, { name: 'write' }, { name: 'secret' }, { title: 'no name' }], nextCursor: 'p2' },
});

describe('the request screen', () => {
  test('a list request is let through and its answer filtered; other answers are left alone', () => {
    const screen = access.screenFor(grant(['mcp']));
    assert.equal(screen.admit([{ jsonrpc: '2.0', id: 1, method: 'tools/list' }] as JSONRPCMessage[], false, {}), undefined);
    assert.equal(screen.filtersResponses, true);
    const filtered = screen.filterResponse(listAnswer(1) as JSONRPCMessage) as ReturnType<typeof listAnswer>;
    assert.deepEqual(filtered.result.tools, [{ name: 'echo' }]);
    assert.equal(filtered.result.nextCursor, 'p2', 'the page cursor is kept');
    const other = listAnswer(2) as JSONRPCMessage;
    assert.equal(screen.filterResponse(other), other, 'an answer to another id is not touched');
  });

  test('on a GET stream (a resumed one replays earlier answers) every list answer is filtered, whatever its id', () => {
    const screen = access.screenFor(grant(['mcp']));
    assert.equal(screen.filtersResponses, false);
    screen.admitStream();
    const filtered = screen.filterResponse(listAnswer(42) as JSONRPCMessage) as ReturnType<typeof listAnswer>;
    assert.deepEqual(filtered.result.tools, [{ name: 'echo' }]);
    const call = { jsonrpc: '2.0', id: 5, result: { content: [] } } as JSONRPCMessage;
    assert.equal(screen.filterResponse(call), call);
  });

  test('the step-up challenge names the token scopes and the missing one', () => {
    const refusal = access
      .screenFor(grant(['mcp', 'openid', 'offline_access']))
      .admit([{ jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'write' } }] as JSONRPCMessage[], false, {});
    assert.equal(refusal?.status, 403);
    assert.equal(
      refusal?.headers['www-authenticate'],
      'Bearer error="insufficient_scope", scope="mcp files:write", resource_metadata="https://gw.example/.well-known/oauth-protected-resource/mcp"',
    );
  });

  test('completions, subscriptions and reads are judged like using the item', () => {
    const screen = access.screenFor(grant(['mcp']));
    const refused = (message: unknown) => screen.admit([message] as JSONRPCMessage[], false, {});
    assert.equal(
      refused({ jsonrpc: '2.0', id: 1, method: 'completion/complete', params: { ref: { type: 'ref/prompt', name: 'greet' }, argument: {} } }),
      undefined,
    );
    assert.match(
      refused({ jsonrpc: '2.0', id: 2, method: 'completion/complete', params: { ref: { type: 'ref/prompt', name: 'hidden' } } })?.body ?? '',
      /-32010/,
    );
    assert.match(refused({ jsonrpc: '2.0', id: 3, method: 'resources/subscribe', params: { uri: 'file:///etc/passwd' } })?.body ?? '', /-32010/);
    assert.equal(refused({ jsonrpc: '2.0', id: 4, method: 'resources/read', params: { uri: 'file:///public/a.txt' } }), undefined);
    assert.match(refused({ jsonrpc: '2.0', id: 5, method: 'tools/call', params: { name: 42 } })?.body ?? '', /-32602/, 'a name that is no string');
    assert.equal(refused({ jsonrpc: '2.0', method: 'notifications/initialized' }), undefined);
    assert.equal(refused({ jsonrpc: '2.0', id: 6, method: 'toString' }), undefined, 'method names are not looked up on a prototype');
  });
});

describe('the list-answer filter', () => {
  function filterFor(): ListAnswerFilter {
    const screen = access.screenFor(grant(['mcp']));
    screen.admit([{ jsonrpc: '2.0', id: 1, method: 'tools/list' }] as JSONRPCMessage[], false, {});
    return new ListAnswerFilter(screen);
  }

  test('SSE: cut at every byte, with CRLF line ends, other events byte for byte, id and event lines kept', () => {
    const stream = `: keep-alive\r\n\r\nevent: message\r\nid: 7\r\ndata: ${JSON.stringify(listAnswer(1))}\r\n\r\ndata: {"jsonrpc":"2.0","method":"notifications/message","params":{"data":"é"}}\n\n`;
    const bytes = Buffer.from(stream);
    for (const cut of [1, 2, 7, 64]) {
      const filter = filterFor();
      assert.ok(filter.begin({ 'content-type': 'text/event-stream' }));
      let out = '';
      for (let at = 0; at < bytes.length; at += cut) out += filter.events(bytes.subarray(at, at + cut)).toString('utf8');
      const events = out.split(/\r\n\r\n|\n\n/);
      assert.equal(events[0], ': keep-alive');
      assert.match(events[1] ?? '', /^event: message\nid: 7\ndata: /);
      assert.deepEqual(JSON.parse((events[1] ?? '').split('data: ')[1] ?? '').result.tools, [{ name: 'echo' }], `cut every ${cut} bytes`);
      assert.equal(events[2], 'data: {"jsonrpc":"2.0","method":"notifications/message","params":{"data":"é"}}');
    }
  });

  test('JSON: a batch answer is filtered member by member; a non-JSON body is passed on as it came', () => {
    const filter = filterFor();
    assert.ok(filter.begin({ 'content-type': 'application/json; charset=utf-8' }));
    const body = Buffer.from(JSON.stringify([listAnswer(1), listAnswer(9)]));
    // The proxy's exchange holds the body (http-proxy.ts); the filter sees it whole.
    const [first, second] = JSON.parse(filter.filterBody(body).toString('utf8'));
    assert.deepEqual(first.result.tools, [{ name: 'echo' }]);
    assert.equal(second.result.tools.length, 4, 'not an answer to the list request');

    const garbage = filterFor();
    garbage.begin({ 'content-type': 'application/json' });
    assert.equal(garbage.filterBody(Buffer.from('not json')).toString(), 'not json');
  });

  test('a body that is neither JSON nor SSE is not filtered', () => {
    assert.equal(filterFor().begin({ 'content-type': 'text/plain' }), false);
  });
});
