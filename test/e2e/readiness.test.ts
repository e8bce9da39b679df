/**
 * `/readyz` and `/healthz` (docs/operations.md) on the whole stack, with real failures: the real IdP
 * stopped before its discovery was ever loaded, then started again; the SQLite database file moved
 * away under the running gateway (what a detached volume or a clean-up job does), then put back; a
 * real redis-server killed and restarted under a gateway on Redis storage. The
 * gateway's clock is a TestClock, so the short result cache is passed by moving time, not by waiting.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { rename } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { TestClock } from '../support/clock.ts';
import { type RunningRedis, redisUnavailable, startRedis } from '../support/redis.ts';
import { type Stack, startStack } from './stack.ts';

async function readyz(stack: Stack, method = 'GET'): Promise<{ status: number; body: unknown }> {
  const response = await fetch(`${stack.issuer}/readyz`, { method });
  assert.equal(response.headers.get('cache-control'), 'no-store');
  return { status: response.status, body: method === 'HEAD' ? undefined : await response.json() };
}

describe('readiness', () => {
  const clock = new TestClock();
  let stack: Stack;

  before(async () => {
    stack = await startStack({ clock });
  });
  after(async () => {
    await stack?.close();
  });

  it('/healthz says only that the process is alive', async () => {
    const response = await fetch(`${stack.issuer}/healthz`);
    assert.equal(response.status, 200);
    assert.deepEqual(await response.json(), { status: 'ok' });
  });

  it('is not ready until the IdP discovery has loaded once', async () => {
    await stack.idp.stop();
    assert.deepEqual(await readyz(stack), { status: 503, body: { status: 'not_ready', checks: { storage: 'ok', keys: 'ok', 'idp:corp': 'fail' } } });
    await stack.idp.start();
    // Within the cache period the answer stands; past it, the checks run again.
    assert.equal((await readyz(stack)).status, 503);
    clock.advance(1_001);
    assert.deepEqual(await readyz(stack), { status: 200, body: { status: 'ready', checks: { storage: 'ok', keys: 'ok', 'idp:corp': 'ok' } } });
    assert.equal((await readyz(stack, 'HEAD')).status, 200);
  });

  it('stays ready when the IdP goes down after its discovery loaded (logins fail, tokens still work)', async () => {
    await stack.idp.stop();
    clock.advance(1_001);
    try {
      assert.equal((await readyz(stack)).status, 200);
    } finally {
      await stack.idp.start();
    }
  });

  it('flips to 503 when the database file goes away, and back when it returns', async () => {
    const file = join(stack.dataDir, 'gateway.db');
    const moved = join(stack.dataDir, 'moved-away.db');
    await rename(file, moved);
    try {
      clock.advance(1_001);
      assert.deepEqual(await readyz(stack), { status: 503, body: { status: 'not_ready', checks: { storage: 'fail', keys: 'ok', 'idp:corp': 'ok' } } });
    } finally {
      await rename(moved, file);
    }
    clock.advance(1_001);
    assert.deepEqual(await readyz(stack), { status: 200, body: { status: 'ready', checks: { storage: 'ok', keys: 'ok', 'idp:corp': 'ok' } } });
  });

  it('pings the storage once for a flood of probes', async () => {
    const storage = stack.gateway.storage;
    const ping = storage.ping.bind(storage);
    let pings = 0;
    storage.ping = () => {
      pings++;
      return ping();
    };
    try {
      clock.advance(1_001);
      const answers = await Promise.all(Array.from({ length: 50 }, () => readyz(stack)));
      assert.ok(answers.every((answer) => answer.status === 200));
      assert.equal(pings, 1);
    } finally {
      storage.ping = ping;
    }
  });
});

describe('readiness on Redis storage', { skip: redisUnavailable() ?? false }, () => {
  const clock = new TestClock();
  let redis: RunningRedis;
  let stack: Stack;

  before(async () => {
    redis = await startRedis();
    stack = await startStack({
      clock,
      configure: (config) => {
        config.storage = { type: 'redis', url: redis.url, keyPrefix: 'readyz:', commandTimeoutMs: 500, connectTimeoutMs: 1000 };
        config.secrets = { encryptionKeys: [randomBytes(32).toString('base64')] };
      },
    });
  });
  after(async () => {
    await stack?.close();
    await redis?.close();
  });

  it('is not ready while Redis is down, and ready again once it is back', async () => {
    clock.advance(1_001);
    assert.equal((await readyz(stack)).status, 200);
    await redis.kill();
    clock.advance(1_001);
    assert.deepEqual(await readyz(stack), { status: 503, body: { status: 'not_ready', checks: { storage: 'fail', keys: 'ok', 'idp:corp': 'ok' } } });
    await redis.restart();
    // The client reconnects on its own schedule; the probe is answered from a fresh ping each period.
    let answer = await readyz(stack);
    for (const deadline = Date.now() + 10_000; answer.status !== 200 && Date.now() < deadline; answer = await readyz(stack)) clock.advance(1_001);
    assert.deepEqual(answer, { status: 200, body: { status: 'ready', checks: { storage: 'ok', keys: 'ok', 'idp:corp': 'ok' } } });
  });
});
