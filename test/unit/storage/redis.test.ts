/**
 * What the Redis backend promises beyond the shared contract (storage.test.ts): key prefixes keep
 * gateways apart even when they hold glob characters, atomicity holds between two connections (two
 * replicas), an outage fails fast with ERR_STORAGE_UNAVAILABLE and heals by itself, writes survive a
 * SIGKILL with `appendfsync always`, and TLS with a password works without the password ever showing
 * in an error. Every test runs against a real redis-server (test/support/redis.ts).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createClient } from '@redis/client';
import { ErrorCode } from '../../../src/core/errors.ts';
import { RedisStorage, type RedisStorageOptions } from '../../../src/storage/redis.ts';
import { redactedRedisUrl } from '../../../src/storage/redis-connection.ts';
import { TestClock } from '../../support/clock.ts';
import { freePort } from '../../support/ports.ts';
import { type RunningRedis, redisUnavailable, startRedis } from '../../support/redis.ts';
import { createTestCa, opensslAvailable } from '../../support/tls.ts';

const skip = redisUnavailable() ?? false;

function open(redis: RunningRedis, keyPrefix: string, extra: Partial<RedisStorageOptions> = {}): Promise<RedisStorage> {
  return RedisStorage.connect({ url: redis.url, keyPrefix, connectTimeoutMs: 2000, commandTimeoutMs: 1000, ...extra });
}

describe('RedisStorage on one redis-server', { skip }, () => {
  let redis: RunningRedis;
  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    await redis?.close();
  });

  test('key prefixes keep two gateways apart, even prefixes with glob characters', async () => {
    const clock = new TestClock();
    // `gw*:` as a SCAN pattern would match `gw-other:` too; escaped, it matches only itself.
    const star = await open(redis, 'gw*:', { clock });
    const other = await open(redis, 'gw-other:', { clock });
    const bracket = await open(redis, 'gw[1]:', { clock });
    const one = await open(redis, 'gw1:', { clock });
    try {
      await star.set('ns', 'k', 'star');
      await other.set('ns', 'k', 'other', 5);
      await other.set('ns', 'k2', 'other-2');
      await bracket.set('ns', 'k', 'bracket');
      await one.set('ns', 'k', 'one', 5);
      assert.equal(await star.get('ns', 'k'), 'star');
      assert.equal(await other.get('ns', 'k'), 'other');
      assert.deepEqual(await star.list('ns'), [{ key: 'k', value: 'star' }]);
      assert.deepEqual(await bracket.list('ns'), [{ key: 'k', value: 'bracket' }]);

      // Sweeping one prefix leaves another prefix's expired entries to that gateway.
      clock.advance(5_000);
      await star.sweep();
      await bracket.sweep();
      const probe = await open(redis, 'gw-other:'); // system clock: the entry is still live for it
      try {
        assert.equal(await probe.get('ns', 'k'), 'other', "another prefix's sweep did not remove it");
      } finally {
        await probe.close();
      }
      await other.sweep();
      assert.equal(await other.get('ns', 'k'), undefined);
      assert.equal(await other.get('ns', 'k2'), 'other-2');
    } finally {
      for (const storage of [star, other, bracket, one]) await storage.close();
    }
  });

  test('list finds keys and namespaces that hold glob characters, and only those', async () => {
    const storage = await open(redis, 'globs:');
    try {
      const keys = ['a*', 'b?', '[c]', 'd\\e', 'plain', 'with:colon', 'ключ'];
      for (const key of keys) await storage.set('n*s', key, { key });
      await storage.set('nXs', 'not-listed', 1);
      await storage.set('n*sX', 'not-listed', 1);
      const listed = await storage.list<{ key: string }>('n*s');
      assert.deepEqual(listed.map((entry) => entry.key).toSorted(), keys.toSorted());
      for (const entry of listed) assert.equal(entry.value.key, entry.key);
      assert.deepEqual(await storage.list('nXs'), [{ key: 'not-listed', value: 1 }]);
    } finally {
      await storage.close();
    }
  });

  test('list pages through more keys than one SCAN step', async () => {
    const storage = await open(redis, 'many:');
    try {
      await Promise.all(Array.from({ length: 1_200 }, (_, i) => storage.set('bulk', `k${i}`, i)));
      const listed = await storage.list<number>('bulk');
      assert.equal(listed.length, 1_200);
      assert.equal(new Set(listed.map((entry) => entry.key)).size, 1_200);
    } finally {
      await storage.close();
    }
  });

  test('two connections (two replicas) consume once, count every increment and claim once', async () => {
    const a = await open(redis, 'race:');
    const b = await open(redis, 'race:');
    try {
      for (let round = 0; round < 20; round++) {
        await a.set('codes', `c${round}`, { round });
        const results = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? a : b).consume('codes', `c${round}`)));
        assert.deepEqual(
          results.filter((result) => result !== undefined),
          [{ round }],
          `round ${round}: exactly one consumer`,
        );
      }
      const counts = await Promise.all(Array.from({ length: 100 }, (_, i) => (i % 2 ? a : b).increment('rate', 'k', 60)));
      assert.deepEqual(
        counts.toSorted((x, y) => x - y),
        Array.from({ length: 100 }, (_, i) => i + 1),
      );
      const claims = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? a : b).setIfAbsent('keys', 'claim', i)));
      assert.equal(claims.filter(Boolean).length, 1);
      await Promise.all(Array.from({ length: 50 }, (_, i) => (i % 2 ? a : b).addToSet('idx', 'grant', `t${i}`, 60)));
      assert.equal((await a.members('idx', 'grant')).length, 50);
    } finally {
      await a.close();
      await b.close();
    }
  });

  test('a value the gateway did not write is reported as corrupt, and sweep leaves it alone', async () => {
    const storage = await open(redis, 'foreign:');
    const raw = await createClient({ url: redis.url }).connect();
    try {
      await raw.set('foreign:ns:bare', 'no envelope here');
      await raw.set('foreign:ns:piped', 'abc|{"looks":"close"}');
      await assert.rejects(storage.get('ns', 'bare'), { code: ErrorCode.STORAGE_CORRUPT });
      await storage.sweep();
      assert.equal(await raw.get('foreign:ns:bare'), 'no envelope here');
      assert.equal(await raw.get('foreign:ns:piped'), 'abc|{"looks":"close"}');
    } finally {
      raw.destroy();
      await storage.close();
    }
  });
});

describe('RedisStorage when Redis goes away', { skip }, () => {
  test('commands fail fast with ERR_STORAGE_UNAVAILABLE, and work again once Redis is back', async () => {
    const redis = await startRedis();
    const storage = await open(redis, 'outage:', { commandTimeoutMs: 500 });
    try {
      await storage.set('ns', 'kept', 'v');
      await redis.kill();
      for (const call of [
        () => storage.get('ns', 'kept'),
        () => storage.consume('ns', 'kept'),
        () => storage.increment('rate', 'k', 60),
        () => storage.list('ns'),
      ]) {
        const started = performance.now();
        await assert.rejects(call(), { code: ErrorCode.STORAGE_UNAVAILABLE });
        assert.ok(performance.now() - started < 1_000, 'no wait for Redis to come back');
      }
      await redis.restart();
      const deadline = Date.now() + 10_000;
      let value: unknown;
      for (;;) {
        try {
          value = await storage.get('ns', 'kept');
          break;
        } catch (error) {
          if (Date.now() > deadline) throw error;
          await new Promise((resolve) => setTimeout(resolve, 50)); // waiting for the reconnect, with a deadline
        }
      }
      assert.equal(value, 'v', 'the write before SIGKILL survived (appendfsync always)');
    } finally {
      await storage.close();
      await redis.close();
    }
  });

  test('a Redis that stops answering (SIGSTOP) fails each command after commandTimeoutMs', async () => {
    const redis = await startRedis();
    const storage = await open(redis, 'hang:', { commandTimeoutMs: 300 });
    const pid = redis.pid()!;
    try {
      await storage.set('ns', 'k', 'v');
      process.kill(pid, 'SIGSTOP');
      const started = performance.now();
      await assert.rejects(storage.get('ns', 'k'), { code: ErrorCode.STORAGE_UNAVAILABLE });
      const elapsed = performance.now() - started;
      assert.ok(elapsed >= 250 && elapsed < 2_000, `failed after ${Math.round(elapsed)} ms`);
    } finally {
      process.kill(pid, 'SIGCONT');
      await storage.close();
      await redis.close();
    }
  });

  test('start-up against a Redis that is not there fails at once, naming the server without credentials', async () => {
    const port = await freePort();
    const started = performance.now();
    await assert.rejects(
      RedisStorage.connect({
        url: `redis://gateway:hunter2-secret@127.0.0.1:${port}/0`,
        keyPrefix: 'x:',
        connectTimeoutMs: 1000,
        commandTimeoutMs: 1000,
      }),
      (error: Error & { code?: string }) => {
        assert.equal(error.code, ErrorCode.STORAGE_UNAVAILABLE);
        assert.match(error.message, new RegExp(`redis://127\\.0\\.0\\.1:${port}/0`));
        assert.doesNotMatch(error.message, /hunter2/);
        return true;
      },
    );
    assert.ok(performance.now() - started < 1_500);
    assert.equal(redactedRedisUrl('rediss://u:p@h:1/2'), 'rediss://h:1/2');
  });
});

describe('RedisStorage checks the server settings the gateway relies on', { skip }, () => {
  test('warns once at start-up about a Redis without AOF or with an eviction policy, and is quiet otherwise', async () => {
    const capture = () => {
      const warnings: string[] = [];
      return { warnings, log: { warn: (_object: object, message: string) => warnings.push(message), info: () => {} } };
    };
    const risky = await startRedis({ extraArgs: ['--appendonly', 'no', '--maxmemory-policy', 'allkeys-lru'] });
    const safe = await startRedis();
    try {
      const seen = capture();
      await (await open(risky, 'settings:', { log: seen.log })).close();
      assert.equal(seen.warnings.length, 2, seen.warnings.join('\n'));
      assert.match(seen.warnings[0]!, /appendonly/);
      assert.match(seen.warnings[1]!, /allkeys-lru.*noeviction/);
      const quiet = capture();
      await (await open(safe, 'settings:', { log: quiet.log })).close();
      assert.deepEqual(quiet.warnings, []);
    } finally {
      await risky.close();
      await safe.close();
    }
  });
});

describe('RedisStorage over TLS with a password', { skip: skip || (opensslAvailable() ? false : 'openssl not installed') }, () => {
  test('connects with the CA and password, and refuses a wrong password without printing it', async () => {
    const ca = await createTestCa();
    const redis = await startRedis({ password: 'correct-horse-battery', tls: ca });
    try {
      const storage = await open(redis, 'tls:', { password: 'correct-horse-battery', tlsCa: ca.caPem });
      await storage.set('ns', 'k', 'over tls');
      assert.equal(await storage.get('ns', 'k'), 'over tls');
      await storage.close();

      await assert.rejects(open(redis, 'tls:', { password: 'wrong-password-here', tlsCa: ca.caPem }), (error: Error & { code?: string }) => {
        assert.equal(error.code, ErrorCode.STORAGE_UNAVAILABLE);
        assert.doesNotMatch(error.message, /wrong-password-here|correct-horse/);
        return true;
      });
      // Without the CA, the server's certificate is not trusted.
      await assert.rejects(open(redis, 'tls:', { password: 'correct-horse-battery' }), { code: ErrorCode.STORAGE_UNAVAILABLE });
    } finally {
      await redis.close();
    }
  });
});
