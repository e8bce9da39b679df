import assert from 'node:assert/strict';
import { test } from 'node:test';
import { configSchema } from '../../../src/config/schema.ts';
import { rateLimitDecision, rateLimitWindow } from '../../../src/policy/rate-limit.ts';
import { openStorage } from '../../../src/storage/index.ts';

test('windows are aligned to the clock, so the key names the window and Retry-After is the time left in it', () => {
  const rule = { limit: 3, windowSeconds: 60 };
  const start = 1_700_000_040_000; // a multiple of 60 s
  const first = rateLimitWindow('register', '198.51.100.1', rule, start);
  assert.equal(first.secondsLeft, 60);
  const later = rateLimitWindow('register', '198.51.100.1', rule, start + 59_500);
  assert.equal(later.key, first.key, 'same window');
  assert.equal(later.secondsLeft, 1, 'never 0: Retry-After 0 would invite an immediate retry');
  const next = rateLimitWindow('register', '198.51.100.1', rule, start + 60_000);
  assert.notEqual(next.key, first.key, 'a new window starts a new counter');
  assert.notEqual(rateLimitWindow('register', '198.51.100.2', rule, start).key, first.key, 'another address, another counter');
  assert.notEqual(rateLimitWindow('other', '198.51.100.1', rule, start).key, first.key, 'another scope, another counter');
});

test('up to the limit is allowed; over it is refused with the seconds left in the window', () => {
  const rule = { limit: 3, windowSeconds: 60 };
  const window = rateLimitWindow('register', '198.51.100.1', rule, 1_700_000_040_000 + 15_000);
  assert.deepEqual(rateLimitDecision(1, rule, window), { allowed: true, remaining: 2, retryAfterSeconds: 0 });
  assert.deepEqual(rateLimitDecision(3, rule, window), { allowed: true, remaining: 0, retryAfterSeconds: 0 });
  assert.deepEqual(rateLimitDecision(4, rule, window), { allowed: false, remaining: 0, retryAfterSeconds: 45 });
  assert.equal(rateLimitDecision(10_000, { limit: 0, windowSeconds: 60 }, window).allowed, true, 'limit 0 turns it off');
});

test('with a real store, the counter decides across "replicas" sharing it, and a new window starts afresh', async () => {
  const storage = await openStorage(configSchema.parse({ publicUrl: 'http://localhost:1', storage: { type: 'memory' } }));
  try {
    const rule = { limit: 2, windowSeconds: 1 };
    const now = Date.now();
    const verdicts: boolean[] = [];
    for (let i = 0; i < 3; i++) {
      // Each call stands for a different replica: the only shared thing is the store.
      const window = rateLimitWindow('register', '192.0.2.1', rule, now);
      verdicts.push(rateLimitDecision(await storage.increment('rate', window.key, window.secondsLeft), rule, window).allowed);
    }
    assert.deepEqual(verdicts, [true, true, false]);
    const later = rateLimitWindow('register', '192.0.2.1', rule, now + 1000);
    assert.equal(rateLimitDecision(await storage.increment('rate', later.key, later.secondsLeft), rule, later).allowed, true);
  } finally {
    await storage.close();
  }
});

test('the registration limit defaults high enough for a benchmark and Claude, and 0 turns it off', () => {
  const config = configSchema.parse({ publicUrl: 'https://mcp.example.com' });
  assert.deepEqual(config.registration.rateLimit, { perAddress: 60, windowSeconds: 60 });
  const off = configSchema.parse({ publicUrl: 'https://mcp.example.com', registration: { rateLimit: { perAddress: 0 } } });
  assert.equal(off.registration.rateLimit.perAddress, 0);
  assert.equal(off.registration.unusedClientTtl, 86400, 'other registration defaults stay');
  assert.throws(() => configSchema.parse({ publicUrl: 'https://mcp.example.com', registration: { rateLimit: { perAddress: -1 } } }));
});
