import assert from 'node:assert/strict';
import { test } from 'node:test';
import { bucketOf, callTarget, leaseSlice, type McpRateLimitRule, windowAt } from '../../../src/policy/mcp-rate-limit.ts';

/** Every slice of a window's budget, in lease order, until a lease comes back empty. */
function slices(limit: number, maxLease: number): Array<{ start: number; size: number }> {
  const out: Array<{ start: number; size: number }> = [];
  for (let lease = 1; ; lease++) {
    const slice = leaseSlice(lease, limit, maxLease);
    if (slice.size === 0) return out;
    out.push(slice);
    assert.ok(lease < 100_000, 'the slices end');
  }
}

test('the leases of a window cut its budget into disjoint slices that add up to the limit exactly', () => {
  for (const [limit, maxLease] of [
    [1, 50],
    [5, 50],
    [7, 1],
    [100, 50],
    [1000, 50],
    [200, 200],
    [1_000_000, 64],
  ] as const) {
    const cut = slices(limit, maxLease);
    let next = 0;
    for (const slice of cut) {
      assert.equal(slice.start, next, `limit ${limit}: slices follow each other without gap or overlap`);
      assert.ok(slice.size >= 1 && slice.size <= maxLease, `limit ${limit}: slice size within 1..maxLease`);
      next += slice.size;
    }
    assert.equal(next, limit, `limit ${limit}, maxLease ${maxLease}: the slices add up to the limit`);
    assert.deepEqual(leaseSlice(cut.length + 5, limit, maxLease), { start: limit, size: 0 }, 'later leases are empty');
  }
});

test('slices shrink towards the end of the budget, so little is held unspent by other replicas when it runs out', () => {
  const cut = slices(1000, 50);
  assert.equal(cut[0]?.size, 50, 'early slices are maxLease');
  const last = cut.slice(-3).map((slice) => slice.size);
  assert.deepEqual(last, [1, 1, 1], 'the last units are leased one by one');
  for (const slice of cut) assert.ok(slice.size <= Math.max(1, Math.ceil((1000 - slice.start) / 4)), 'at most a quarter of what is left');
  // Small limits are counted one by one: exact across replicas.
  assert.deepEqual(
    slices(4, 50).map((slice) => slice.size),
    [1, 1, 1, 1],
  );
});

test('windows are aligned to the clock: a day is a UTC day, and the time left is whole seconds, never 0', () => {
  const midnight = Date.UTC(2026, 10, 30);
  assert.deepEqual(windowAt(86_400, midnight + 3_600_000), { index: midnight / 86_400_000, endsAtMs: midnight + 86_400_000, secondsLeft: 82_800 });
  assert.equal(windowAt(60, midnight + 59_999).secondsLeft, 1);
  assert.equal(windowAt(60, midnight + 60_000).index, windowAt(60, midnight).index + 1);
});

test('buckets: per user, per client, per user and tool (only the listed tools), kept apart by server and rule', () => {
  const who = { user: 'corp:alice', client: 'client-1' };
  const rule = (per: McpRateLimitRule['per'], tools?: string[]): McpRateLimitRule => ({ per, limit: 1, windowSeconds: 60, maxLease: 1, tools });
  assert.equal(bucketOf('tools', 0, rule('user'), who, 'echo'), 'tools:0:u:corp:alice');
  assert.equal(bucketOf('tools', 1, rule('client'), who, undefined), 'tools:1:c:client-1');
  assert.equal(bucketOf('tools', 2, rule('user+tool'), who, 'echo'), 'tools:2:ut:corp:alice:"echo"');
  assert.equal(bucketOf('tools', 2, rule('user+tool'), who, undefined), undefined, 'not a tools/call: not counted');
  assert.equal(bucketOf('tools', 2, rule('user+tool', ['report']), who, 'echo'), undefined, 'a tool the rule does not name');
  assert.equal(bucketOf('tools', 2, rule('user+tool', ['report']), who, 'report'), 'tools:2:ut:corp:alice:"report"');
  assert.notEqual(bucketOf('other', 0, rule('user'), who, undefined), bucketOf('tools', 0, rule('user'), who, undefined));
  // A tool name cannot pose as another user's bucket.
  assert.notEqual(
    bucketOf('tools', 2, rule('user+tool'), { user: 'a', client: 'c' }, 'b:"x"'),
    bucketOf('tools', 2, rule('user+tool'), { user: 'a:"b', client: 'c' }, 'x'),
  );
});

test('what a message names: the tool of tools/call, the prompt of prompts/get, the URI of resources/read', () => {
  assert.deepEqual(callTarget({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo', arguments: {} } }), {
    method: 'tools/call',
    tool: 'echo',
  });
  assert.deepEqual(callTarget({ jsonrpc: '2.0', id: 1, method: 'prompts/get', params: { name: 'p' } }), { method: 'prompts/get', prompt: 'p' });
  assert.deepEqual(callTarget({ jsonrpc: '2.0', id: 1, method: 'resources/read', params: { uri: 'file:///a' } }), {
    method: 'resources/read',
    resource: 'file:///a',
  });
  assert.deepEqual(callTarget({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 7 } }), { method: 'tools/call' }, 'a name that is no string');
  assert.deepEqual(callTarget({ jsonrpc: '2.0', method: 'notifications/initialized' }), { method: 'notifications/initialized' });
  assert.equal(callTarget({ jsonrpc: '2.0', id: 1, result: {} }), undefined, 'a response names nothing');
});
