/**
 * The rate limiter of MCP calls against a real store shared by two "replicas" (two limiters, one
 * MemoryStorage): the global limit holds, a window's end restores the budget (the clock is moved,
 * never waited for), and a refused bucket costs no more storage traffic until its window ends.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { createLogger } from '../../../src/observability/logger.ts';
import type { McpRateLimitRule } from '../../../src/policy/mcp-rate-limit.ts';
import { type CallBody, McpRateLimiter, type RateLimitVerdict } from '../../../src/resource-server/mcp-rate-limit.ts';
import { MemoryStorage } from '../../../src/storage/memory.ts';
import type { Storage } from '../../../src/storage/types.ts';
import { TestClock } from '../../support/clock.ts';

const ALICE = { user: 'corp:alice', client: 'client-a' };
const BOB = { user: 'corp:bob', client: 'client-a' };
const MINUTE = Date.UTC(2026, 10, 30, 8, 0, 0);

function call(tool?: string, id = 1): JSONRPCMessage {
  return tool === undefined
    ? ({ jsonrpc: '2.0', id, method: 'tools/list' } as JSONRPCMessage)
    : ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: tool, arguments: {} } } as JSONRPCMessage);
}

/** Counts the store's increments: the limiter's only storage traffic. */
function countingStorage(): { storage: Storage; increments: () => number } {
  const storage = new MemoryStorage();
  let increments = 0;
  const increment = storage.increment.bind(storage);
  storage.increment = (namespace, key, ttl) => {
    increments++;
    return increment(namespace, key, ttl);
  };
  return { storage, increments: () => increments };
}

function replicas(storage: Storage, clock: TestClock): [McpRateLimiter, McpRateLimiter] {
  const logger = createLogger('silent');
  return [new McpRateLimiter({ storage, clock, logger }), new McpRateLimiter({ storage, clock, logger })];
}

async function admit(limiter: McpRateLimiter, rules: McpRateLimitRule[], who: typeof ALICE, body: CallBody): Promise<RateLimitVerdict> {
  return await limiter.admit('tools', rules, who, body);
}

test('two replicas sharing a store admit exactly the limit between them, then refuse until the window ends', async () => {
  const clock = new TestClock(MINUTE + 10_000);
  const { storage, increments } = countingStorage();
  const [a, b] = replicas(storage, clock);
  const rules: McpRateLimitRule[] = [{ per: 'user', limit: 100, windowSeconds: 60, maxLease: 10 }];
  let admitted = 0;
  for (let i = 0; i < 300; i++) if ((await admit(i % 2 === 0 ? a : b, rules, ALICE, call())) === undefined) admitted++;
  assert.ok(admitted <= 100, `never more than the limit (${admitted})`);
  assert.ok(admitted >= 100 - 10, `at most one lease (${admitted}) stranded on the other replica`);
  const refused = await admit(a, rules, ALICE, call());
  assert.equal(refused?.retryAfterSeconds, 50, 'Retry-After: the seconds left in the minute');
  assert.ok(increments() < 60, `leases, not one storage call per request (${increments()} increments for 300 calls)`);

  // Refused buckets are remembered: hammering costs no storage traffic.
  const before = increments();
  for (let i = 0; i < 50; i++) assert.notEqual(await admit(a, rules, ALICE, call()), undefined);
  assert.equal(increments() - before, 0);

  // Another user has a budget of their own.
  assert.equal(await admit(a, rules, BOB, call()), undefined);

  clock.advance(50_000);
  assert.equal(await admit(a, rules, ALICE, call()), undefined, 'a new window starts afresh');
  assert.equal(await admit(b, rules, ALICE, call()), undefined);
});

test('a small limit is counted exactly across replicas (leases of one)', async () => {
  const clock = new TestClock(MINUTE);
  const [a, b] = replicas(new MemoryStorage(), clock);
  const rules: McpRateLimitRule[] = [{ per: 'user', limit: 3, windowSeconds: 60, maxLease: 50 }];
  const verdicts = [];
  for (const limiter of [a, b, a, b, a]) verdicts.push((await admit(limiter, rules, ALICE, call())) === undefined);
  assert.deepEqual(verdicts, [true, true, true, false, false]);
});

test('user+tool rules count only tools/call of their tools; notifications, GETs and responses count nothing', async () => {
  const clock = new TestClock(MINUTE);
  const [a] = replicas(new MemoryStorage(), clock);
  const rules: McpRateLimitRule[] = [{ per: 'user+tool', limit: 2, windowSeconds: 86_400, tools: ['report'], maxLease: 50 }];
  assert.equal(await admit(a, rules, ALICE, call('report')), undefined);
  assert.equal(await admit(a, rules, ALICE, call('echo')), undefined, 'another tool');
  assert.equal(await admit(a, rules, ALICE, call('report')), undefined);
  const refused = await admit(a, rules, ALICE, call('report'));
  assert.ok(refused, 'the daily budget of report is spent');
  assert.equal(refused.retryAfterSeconds, 16 * 3600, 'until the UTC day ends');
  assert.equal(await admit(a, rules, ALICE, call('echo')), undefined, 'other tools still go');
  assert.equal(await admit(a, rules, BOB, call('report')), undefined, "another user's budget");
  assert.equal(await admit(a, rules, ALICE, { jsonrpc: '2.0', method: 'notifications/initialized' } as JSONRPCMessage), undefined);
  assert.equal(await admit(a, rules, ALICE, undefined), undefined, 'no body (GET, DELETE)');
});

test('a call refused by one rule spends nothing of the others', async () => {
  const clock = new TestClock(MINUTE);
  const [a] = replicas(new MemoryStorage(), clock);
  const rules: McpRateLimitRule[] = [
    { per: 'user', limit: 3, windowSeconds: 60, maxLease: 1 },
    { per: 'user+tool', limit: 1, windowSeconds: 60, maxLease: 1 },
  ];
  assert.equal(await admit(a, rules, ALICE, call('report')), undefined); // user 1/3, report 1/1
  assert.ok(await admit(a, rules, ALICE, call('report')), 'report refused');
  assert.ok(await admit(a, rules, ALICE, call('report')), 'report refused again');
  assert.equal(await admit(a, rules, ALICE, call('echo')), undefined); // user 2/3
  assert.equal(await admit(a, rules, ALICE, call()), undefined); // user 3/3: the refusals spent nothing
  assert.ok(await admit(a, rules, ALICE, call()), 'user budget spent');
});

test('unread POST bodies count as one request; a batch counts each request in it', async () => {
  const clock = new TestClock(MINUTE);
  const [a] = replicas(new MemoryStorage(), clock);
  const rules: McpRateLimitRule[] = [{ per: 'client', limit: 3, windowSeconds: 60, maxLease: 50 }];
  assert.equal(await admit(a, rules, ALICE, 'unread'), undefined);
  assert.equal(await admit(a, rules, BOB, [call('x', 1), call('y', 2)]), undefined, 'same client, 2 more');
  assert.ok(await admit(a, rules, ALICE, call()), 'the client has used its 3');
});

test('calls covered by a lease are answered synchronously; concurrent calls share one lease', async () => {
  const clock = new TestClock(MINUTE);
  const { storage, increments } = countingStorage();
  const [a] = replicas(storage, clock);
  const rules: McpRateLimitRule[] = [{ per: 'user', limit: 1000, windowSeconds: 60, maxLease: 20 }];
  const first = [a.admit('tools', rules, ALICE, call()), a.admit('tools', rules, ALICE, call()), a.admit('tools', rules, ALICE, call())];
  assert.ok(
    first.every((verdict) => verdict instanceof Promise),
    'no lease yet: wait for one',
  );
  assert.deepEqual(await Promise.all(first), [undefined, undefined, undefined]);
  assert.equal(increments(), 1, 'one lease for three concurrent calls');
  assert.equal(a.admit('tools', rules, ALICE, call()), undefined, 'within the lease: a plain return, no promise');
});

test('when the store fails the call is admitted and the failure logged', async () => {
  const clock = new TestClock(MINUTE);
  const storage = new MemoryStorage();
  storage.increment = () => Promise.reject(new Error('store down'));
  const lines: Record<string, unknown>[] = [];
  const limiter = new McpRateLimiter({
    storage,
    clock,
    logger: createLogger('info', { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) }),
  });
  assert.equal(await limiter.admit('tools', [{ per: 'user', limit: 1, windowSeconds: 60, maxLease: 1 }], ALICE, call()), undefined);
  assert.equal(lines[0]?.event, 'rate_limit.storage_failed');
});
