/**
 * One contract, run against every backend: whatever passes here can be swapped for another backend
 * without the rest of the gateway noticing. Each backend runs on a test clock, so expiry is checked
 * by moving the clock past it (to the millisecond) rather than by sleeping.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, afterEach, before, beforeEach, describe, test } from 'node:test';
import { createClient, type RedisClientType } from '@redis/client';
import { configSchema } from '../../../src/config/schema.ts';
import { ErrorCode } from '../../../src/core/errors.ts';
import { openStorage, startSweeper } from '../../../src/storage/index.ts';
import { MemoryStorage } from '../../../src/storage/memory.ts';
import { RedisStorage } from '../../../src/storage/redis.ts';
import { SqliteStorage } from '../../../src/storage/sqlite.ts';
import type { Storage } from '../../../src/storage/types.ts';
import { TestClock } from '../../support/clock.ts';
import { type RunningRedis, redisUnavailable, startRedis } from '../../support/redis.ts';

interface Backend {
  name: string;
  /** Why this backend cannot run here (its server is not installed), shown as the skip reason. */
  skip?: string | undefined;
  open(clock: TestClock): Promise<Storage>;
  /** Rows (Redis: keys) physically held, expired or not, to see what sweep() reclaimed. */
  rowCount(storage: Storage): Promise<number>;
}

let tempDir = '';
let fileCounter = 0;
const redisMissing = redisUnavailable();
let redis: RunningRedis | undefined;
/** A second connection, the test's own, to see what the backend under test left in Redis. */
let redisProbe: RedisClientType | undefined;
before(async () => {
  tempDir = await mkdtemp(join(tmpdir(), 'storage-test-'));
  if (redisMissing === undefined) {
    redis = await startRedis();
    redisProbe = await createClient({ url: redis.url }).connect();
  }
});
after(async () => {
  await rm(tempDir, { recursive: true, force: true });
  redisProbe?.destroy();
  await redis?.close();
});

function sqliteRowCount(path: string): number {
  const db = new DatabaseSync(path, { readOnly: true });
  try {
    const kv = Number(db.prepare('SELECT count(*) AS n FROM kv').get()?.n);
    const sets = Number(db.prepare('SELECT count(*) AS n FROM set_member').get()?.n);
    return kv + sets;
  } finally {
    db.close();
  }
}

const sqlitePaths = new WeakMap<Storage, string>();
const redisPrefixes = new WeakMap<Storage, string>();

/** Keys under `prefix` in the test's Redis, live or expired by the test clock. */
async function redisKeyCount(prefix: string): Promise<number> {
  let count = 0;
  for await (const keys of redisProbe!.scanIterator({ MATCH: `${prefix}*`, COUNT: 1000 })) count += keys.length;
  return count;
}

const backends: Backend[] = [
  {
    name: 'memory',
    open: async (clock) => new MemoryStorage({ clock }),
    rowCount: async (storage) => (storage as MemoryStorage).size,
  },
  {
    name: 'sqlite',
    open: async (clock) => {
      const path = join(tempDir, `db-${++fileCounter}`, 'gateway.db');
      const storage = new SqliteStorage(path, { clock });
      sqlitePaths.set(storage, path);
      return storage;
    },
    rowCount: async (storage) => sqliteRowCount(sqlitePaths.get(storage)!),
  },
  {
    // Each test gets its own key prefix in one redis-server, which is itself isolation under test.
    name: 'redis',
    skip: redisMissing,
    open: async (clock) => {
      const keyPrefix = `contract-${++fileCounter}:`;
      const storage = await RedisStorage.connect({ url: redis!.url, keyPrefix, connectTimeoutMs: 2000, commandTimeoutMs: 2000, clock });
      redisPrefixes.set(storage, keyPrefix);
      return storage;
    },
    rowCount: (storage) => redisKeyCount(redisPrefixes.get(storage)!),
  },
];

for (const backend of backends) {
  describe(`Storage contract: ${backend.name}`, { skip: backend.skip ?? false }, () => {
    let storage: Storage;
    let clock: TestClock;
    beforeEach(async () => {
      clock = new TestClock();
      storage = await backend.open(clock);
    });
    afterEach(async () => {
      await storage.close();
    });

    test('get, set and delete', async () => {
      assert.equal(await storage.get('ns', 'missing'), undefined);
      await storage.set('ns', 'a', { n: 1 });
      assert.deepEqual(await storage.get('ns', 'a'), { n: 1 });
      await storage.set('ns', 'a', { n: 2 });
      assert.deepEqual(await storage.get('ns', 'a'), { n: 2 }, 'set overwrites');
      assert.equal(await storage.get('other', 'a'), undefined, 'namespaces are separate');
      await storage.delete('ns', 'a');
      assert.equal(await storage.get('ns', 'a'), undefined);
      await storage.delete('ns', 'a'); // deleting a missing key is not an error
    });

    test('values round-trip as JSON copies', async () => {
      const value = {
        text: 'héllo wörld — 日本語 🔐 \u0000 "quoted" \\ back',
        nested: { list: [1, 2.5, -3, null, true, false, { deep: ['x'] }], empty: {} },
        big: Number.MAX_SAFE_INTEGER,
      };
      await storage.set('ns', 'ключ 🔑', value);
      assert.deepEqual(await storage.get('ns', 'ключ 🔑'), value);
      for (const scalar of ['plain string', 0, 42, false, null, []]) {
        await storage.set('ns', 'scalar', scalar);
        assert.deepEqual(await storage.get('ns', 'scalar'), scalar);
      }
      // Stored values are copies: mutating the caller's object or a read result changes nothing.
      const mutable = { list: [1] };
      await storage.set('ns', 'copy', mutable);
      mutable.list.push(2);
      const read = await storage.get<{ list: number[] }>('ns', 'copy');
      read!.list.push(3);
      assert.deepEqual(await storage.get('ns', 'copy'), { list: [1] });
      await assert.rejects(storage.set('ns', 'bad', undefined), TypeError);
    });

    test('setIfAbsent claims a key once, and again only after the claim expired', async () => {
      assert.equal(await storage.setIfAbsent('ns', 'claim', 'first', 10), true);
      assert.equal(await storage.setIfAbsent('ns', 'claim', 'second', 10), false);
      assert.equal(await storage.get('ns', 'claim'), 'first', 'the losing claim changes nothing');
      const racers = await Promise.all(Array.from({ length: 5 }, (_, i) => storage.setIfAbsent('ns', 'race', i)));
      assert.equal(racers.filter(Boolean).length, 1, 'exactly one of five concurrent claims wins');
      clock.advance(10_000);
      assert.equal(await storage.setIfAbsent('ns', 'claim', 'third'), true, 'an expired claim can be taken again');
      assert.equal(await storage.get('ns', 'claim'), 'third');
    });

    test('list returns the live entries of one namespace', async () => {
      await storage.set('listed', 'a', { n: 1 });
      await storage.set('listed', 'b', 2, 5);
      await storage.set('other', 'c', 3);
      await storage.addToSet('listed', 'set', 'member');
      const byKey = (entries: Array<{ key: string; value: unknown }>) => entries.sort((x, y) => x.key.localeCompare(y.key));
      assert.deepEqual(byKey(await storage.list('listed')), [
        { key: 'a', value: { n: 1 } },
        { key: 'b', value: 2 },
      ]);
      clock.advance(5_000);
      assert.deepEqual(await storage.list('listed'), [{ key: 'a', value: { n: 1 } }], 'expired entries are not listed');
      assert.deepEqual(await storage.list('empty'), []);
      await storage.ping();
    });

    test('entries expire after their TTL', async () => {
      await storage.set('ns', 'short', 'v', 10);
      await storage.set('ns', 'long', 'v', 60);
      await storage.set('ns', 'forever', 'v');
      clock.advance(9_999);
      assert.equal(await storage.get('ns', 'short'), 'v', 'live until the last millisecond');
      clock.advance(1);
      assert.equal(await storage.get('ns', 'short'), undefined, 'gone at its expiry');
      assert.equal(await storage.consume('ns', 'short'), undefined, 'consume never returns expired entries');
      assert.equal(await storage.get('ns', 'long'), 'v');
      assert.equal(await storage.get('ns', 'forever'), 'v');
      // A non-positive TTL stores the entry already expired, hiding any previous value.
      await storage.set('ns', 'long', 'replaced', 0);
      assert.equal(await storage.get('ns', 'long'), undefined);
      await assert.rejects(storage.set('ns', 'x', 'v', Number.NaN), RangeError);
    });

    test('expire() changes the expiry of live entries only', async () => {
      assert.equal(await storage.expire('ns', 'missing', 10), false);
      await storage.set('ns', 'a', 'v');
      assert.equal(await storage.expire('ns', 'a', 10), true);
      await storage.set('ns', 'b', 'v', 10);
      assert.equal(await storage.expire('ns', 'b', undefined), true, 'undefined makes it permanent');
      clock.advance(5_000);
      await storage.set('ns', 'c', 'v', 10);
      assert.equal(await storage.expire('ns', 'c', 1), true, 'expire() can shorten too');
      clock.advance(5_000);
      assert.equal(await storage.get('ns', 'c'), undefined);
      assert.equal(await storage.get('ns', 'a'), undefined);
      assert.equal(await storage.get('ns', 'b'), 'v');
      assert.equal(await storage.expire('ns', 'a', 60), false, 'an expired entry cannot be revived');
      assert.equal(await storage.get('ns', 'a'), undefined);
    });

    test('consume returns the value to exactly one of 20 concurrent callers', async () => {
      await storage.set('codes', 'c1', { user: 'u1' });
      const results = await Promise.all(Array.from({ length: 20 }, () => storage.consume('codes', 'c1')));
      assert.deepEqual(
        results.filter((result) => result !== undefined),
        [{ user: 'u1' }],
      );
      assert.equal(await storage.get('codes', 'c1'), undefined);
      assert.equal(await storage.consume('codes', 'missing'), undefined);
    });

    test('increment counts within a fixed window', async () => {
      assert.equal(await storage.increment('rate', 'ip', 60), 1);
      assert.equal(await storage.increment('rate', 'ip', 60), 2);
      assert.equal(await storage.get('rate', 'ip'), 2, 'a counter reads as a number');
      clock.advance(59_999);
      assert.equal(await storage.increment('rate', 'ip', 60), 3, 'later increments do not extend the window');
      clock.advance(1); // the window that opened 60 s ago is over
      assert.equal(await storage.increment('rate', 'ip', 60), 1, 'an expired window restarts at 1');
      assert.equal(await storage.increment('rate', 'ip', 60), 2);
      assert.equal(await storage.increment('rate', 'other', 60), 1, 'counters are per key');
      clock.advance(59_999);
      assert.equal(await storage.increment('rate', 'ip', 60), 3, 'the new window is timed from its own start');
    });

    test('concurrent increments are not lost', async () => {
      const counts = await Promise.all(Array.from({ length: 20 }, () => storage.increment('rate', 'k', 60)));
      assert.deepEqual(
        counts.toSorted((a, b) => a - b),
        Array.from({ length: 20 }, (_, i) => i + 1),
      );
    });

    test('increment refuses a value that is not a counter', async () => {
      await storage.set('rate', 'text', 'hello');
      await assert.rejects(storage.increment('rate', 'text', 60), TypeError);
      assert.equal(await storage.get('rate', 'text'), 'hello');
    });

    test('sets hold distinct members', async () => {
      assert.deepEqual(await storage.members('idx', 'grant'), []);
      await storage.addToSet('idx', 'grant', 'token-1');
      await storage.addToSet('idx', 'grant', 'token-2');
      await storage.addToSet('idx', 'grant', 'token-1');
      await storage.addToSet('idx', 'other', 'token-3');
      assert.deepEqual((await storage.members('idx', 'grant')).toSorted(), ['token-1', 'token-2']);
      assert.deepEqual(await storage.members('idx', 'other'), ['token-3']);
      // Values and sets share one keyspace, as in Redis: delete removes whichever is there.
      await storage.delete('idx', 'grant');
      assert.deepEqual(await storage.members('idx', 'grant'), []);
    });

    test('set TTL: extended by later members, never shortened, not revived', async () => {
      await storage.addToSet('idx', 'g', 'a', 30);
      await storage.addToSet('idx', 'g', 'b', 5); // shorter: must not shorten the set
      clock.advance(29_999);
      assert.deepEqual((await storage.members('idx', 'g')).toSorted(), ['a', 'b']);
      await storage.addToSet('idx', 'g', 'c', 10); // longer than what is left: extends the set
      clock.advance(9_999);
      assert.deepEqual((await storage.members('idx', 'g')).toSorted(), ['a', 'b', 'c']);
      clock.advance(1);
      assert.deepEqual(await storage.members('idx', 'g'), []);
      await storage.addToSet('idx', 'g', 'd', 60);
      assert.deepEqual(await storage.members('idx', 'g'), ['d'], 'expired members do not come back');

      await storage.addToSet('idx', 'h', 'a', 15);
      await storage.addToSet('idx', 'h', 'b'); // no TTL: the set becomes permanent
      await storage.addToSet('idx', 'h', 'c', 5);
      clock.advance(86_400_000);
      assert.deepEqual((await storage.members('idx', 'h')).toSorted(), ['a', 'b', 'c']);

      assert.equal(await storage.expire('idx', 'h', 5), true, 'expire() applies to sets');
      clock.advance(5_000);
      assert.deepEqual(await storage.members('idx', 'h'), []);
    });

    test('sweep removes expired entries and sets, and keeps live ones', async () => {
      await storage.set('ns', 'expired', 'v', 5);
      await storage.increment('rate', 'expired', 5);
      await storage.addToSet('idx', 'expired', 'm1', 5);
      await storage.addToSet('idx', 'expired', 'm2', 5);
      await storage.set('ns', 'live', 'v', 60);
      await storage.set('ns', 'forever', 'v');
      await storage.addToSet('idx', 'live', 'm', 60);
      const held = await backend.rowCount(storage);
      await storage.sweep();
      assert.equal(await backend.rowCount(storage), held, 'nothing has expired yet');
      clock.advance(5_000);
      await storage.sweep();
      assert.equal(await backend.rowCount(storage), 3);
      assert.equal(await storage.get('ns', 'live'), 'v');
      assert.equal(await storage.get('ns', 'forever'), 'v');
      assert.deepEqual(await storage.members('idx', 'live'), ['m']);
    });

    test('startSweeper sweeps on its interval until stopped', async (t) => {
      // The interval is a timer, not a clock read: node:test's mock timers fire it on demand. A sweep
      // may finish after tick() returns (Redis answers over a socket), so the sweeps the sweeper starts
      // are recorded and awaited: the test waits for the sweep, never for time.
      t.mock.timers.enable({ apis: ['setInterval'] });
      const sweeps: Promise<void>[] = [];
      const watched: Storage = Object.assign(Object.create(storage) as Storage, {
        sweep: () => {
          const sweep = storage.sweep();
          sweeps.push(sweep);
          return sweep;
        },
      });
      await storage.set('ns', 'expired', 'v', 5);
      const stop = startSweeper(watched, 60_000);
      clock.advance(5_000);
      t.mock.timers.tick(59_999);
      assert.equal(sweeps.length, 0, 'no sweep before the interval');
      assert.equal(await backend.rowCount(storage), 1);
      t.mock.timers.tick(1);
      assert.equal(sweeps.length, 1);
      await Promise.all(sweeps);
      assert.equal(await backend.rowCount(storage), 0);

      stop();
      await storage.set('ns', 'expired-later', 'v', 5);
      clock.advance(5_000);
      t.mock.timers.tick(120_000);
      assert.equal(sweeps.length, 1, 'no sweep after stop()');
      assert.equal(await backend.rowCount(storage), 1);
    });
  });
}

describe('SqliteStorage', () => {
  test('data survives close and reopen', async () => {
    const path = join(tempDir, 'reopen', 'gateway.db');
    const first = new SqliteStorage(path);
    await first.set('ns', 'k', { kept: true });
    await first.addToSet('idx', 's', 'm');
    assert.equal(await first.increment('rate', 'r', 60), 1);
    await first.close();
    await first.close(); // closing twice is harmless

    const second = new SqliteStorage(path);
    try {
      assert.deepEqual(await second.get('ns', 'k'), { kept: true });
      assert.deepEqual(await second.members('idx', 's'), ['m']);
      assert.equal(await second.increment('rate', 'r', 60), 2);
    } finally {
      await second.close();
    }
  });

  test('creates an owner-only directory and file', { skip: process.platform === 'win32' ? 'POSIX file modes do not exist on Windows' : false }, async () => {
    const dir = join(tempDir, 'private', 'nested');
    const path = join(dir, 'gateway.db');
    const storage = new SqliteStorage(path);
    try {
      await storage.set('ns', 'k', 'v'); // makes SQLite create the -wal file
      assert.equal((await stat(path)).mode & 0o777, 0o600);
      assert.equal((await stat(`${path}-wal`)).mode & 0o777, 0o600, 'the WAL inherits the mode');
      assert.equal((await stat(dir)).mode & 0o777, 0o700);
      assert.equal((await stat(join(tempDir, 'private'))).mode & 0o777, 0o700);
    } finally {
      await storage.close();
    }
  });

  test('two connections to one file see each other and consume once between them', async () => {
    const path = join(tempDir, 'shared', 'gateway.db');
    const a = new SqliteStorage(path);
    const b = new SqliteStorage(path);
    try {
      await a.set('codes', 'c', 'v');
      assert.equal(await b.get('codes', 'c'), 'v');
      const results = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? a : b).consume('codes', 'c')));
      assert.equal(results.filter((result) => result !== undefined).length, 1);
    } finally {
      await a.close();
      await b.close();
    }
  });

  test('refuses a database from a newer schema version', async () => {
    const path = join(tempDir, 'future', 'gateway.db');
    await new SqliteStorage(path).close();
    const db = new DatabaseSync(path);
    db.exec('PRAGMA user_version = 99');
    db.close();
    assert.throws(() => new SqliteStorage(path), { code: ErrorCode.STORAGE_SCHEMA_TOO_NEW });
  });

  test('a row it cannot read is reported as corrupt storage', async () => {
    const path = join(tempDir, 'corrupt', 'gateway.db');
    await new SqliteStorage(path).close();
    const db = new DatabaseSync(path);
    // A BLOB keeps its type in a TEXT column (https://sqlite.org/datatype3.html#type_affinity).
    db.prepare("INSERT INTO kv (namespace, key, value, expires_at) VALUES ('ns', 'k', x'00ff', NULL)").run();
    db.close();
    const storage = new SqliteStorage(path);
    try {
      await assert.rejects(storage.get('ns', 'k'), { code: ErrorCode.STORAGE_CORRUPT });
    } finally {
      await storage.close();
    }
  });

  test('scrub leaves no trace of deleted rows in the file or its -wal, and keeps the live ones', async () => {
    const path = join(tempDir, 'scrub', 'gateway.db');
    const files = async () => Buffer.concat([await readFile(path), await readFile(`${path}-wal`).catch(() => Buffer.alloc(0))]);
    const deleted = Array.from({ length: 500 }, (_, i) => `deleted-secret-${String(i).padStart(4, '0')}-${'x'.repeat(40)}`);
    const writer = new SqliteStorage(path);
    for (const secret of deleted) await writer.set('secrets', secret, { secret });
    await writer.close();

    const storage = new SqliteStorage(path);
    const reader = new SqliteStorage(path); // another process's connection, idle
    try {
      for (const secret of deleted) await storage.delete('secrets', secret);
      await storage.set('secrets', 'kept', { secret: 'kept-value' });
      assert.ok((await files()).includes(deleted[0]!), 'a deleted row is still readable from the files before a scrub');
      assert.equal(await storage.scrub(), true);
      const bytes = await files();
      assert.deepEqual(
        deleted.filter((secret) => bytes.includes(secret)),
        [],
      );
      assert.deepEqual(await reader.get('secrets', 'kept'), { secret: 'kept-value' });
    } finally {
      await reader.close();
      await storage.close();
    }
  });

  test('works in memory', async () => {
    const storage = new SqliteStorage(':memory:');
    await storage.set('ns', 'k', 'v');
    assert.equal(await storage.get('ns', 'k'), 'v');
    await storage.close();
  });
});

describe('openStorage', () => {
  test('memory when configured', async () => {
    const storage = await openStorage(configSchema.parse({ storage: { type: 'memory' } }));
    assert.ok(storage instanceof MemoryStorage);
    await storage.close();
  });

  test('refuses a storage type it does not know', async () => {
    const config = configSchema.parse({ storage: { type: 'memory' } });
    const unknown = { ...config, storage: { type: 'cassandra' } } as unknown as typeof config;
    await assert.rejects(openStorage(unknown), { code: ErrorCode.STORAGE_UNKNOWN_TYPE });
  });

  test('sqlite at <dataDir>/gateway.db by default', async () => {
    const dataDir = join(tempDir, 'data-dir');
    const storage = await openStorage(configSchema.parse({ dataDir }));
    try {
      assert.ok(storage instanceof SqliteStorage);
      await storage.set('ns', 'k', 'v');
      assert.ok((await stat(join(dataDir, 'gateway.db'))).isFile());
    } finally {
      await storage.close();
    }
  });

  test('sqlite at storage.path when given', async () => {
    const path = join(tempDir, 'explicit', 'state.sqlite');
    const storage = await openStorage(configSchema.parse({ storage: { type: 'sqlite', path } }));
    await storage.close();
    assert.ok((await stat(path)).isFile());
  });
});
