/**
 * One contract, run against every backend: whatever passes here can be swapped for another backend
 * without the rest of the gateway noticing. TTLs are fractions of a second to keep the suite fast.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, afterEach, before, beforeEach, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { configSchema } from '../../../src/config/schema.ts';
import { openStorage, startSweeper } from '../../../src/storage/index.ts';
import { MemoryStorage } from '../../../src/storage/memory.ts';
import { SqliteStorage } from '../../../src/storage/sqlite.ts';
import type { Storage } from '../../../src/storage/types.ts';

interface Backend {
  name: string;
  open(): Promise<Storage>;
  /** Rows physically held, expired or not, to see what sweep() reclaimed. */
  rowCount(storage: Storage): number;
}

let tempDir = '';
let fileCounter = 0;
before(async () => {
  tempDir = await mkdtemp(join(tmpdir(), 'storage-test-'));
});
after(async () => {
  await rm(tempDir, { recursive: true, force: true });
});

function sqliteRowCount(path: string): number {
  const db = new DatabaseSync(path, { readOnly: true });
  try {
    const kv = Number(db.prepare('SELECT count(*) AS n FROM kv').get()?.['n']);
    const sets = Number(db.prepare('SELECT count(*) AS n FROM set_member').get()?.['n']);
    return kv + sets;
  } finally {
    db.close();
  }
}

const sqlitePaths = new WeakMap<Storage, string>();

const backends: Backend[] = [
  {
    name: 'memory',
    open: async () => new MemoryStorage(),
    rowCount: (storage) => (storage as MemoryStorage).size,
  },
  {
    name: 'sqlite',
    open: async () => {
      const path = join(tempDir, `db-${++fileCounter}`, 'gateway.db');
      const storage = new SqliteStorage(path);
      sqlitePaths.set(storage, path);
      return storage;
    },
    rowCount: (storage) => sqliteRowCount(sqlitePaths.get(storage)!),
  },
];

for (const backend of backends) {
  describe(`Storage contract: ${backend.name}`, () => {
    let storage: Storage;
    beforeEach(async () => {
      storage = await backend.open();
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

    test('entries expire after their TTL', async () => {
      await storage.set('ns', 'short', 'v', 0.15);
      await storage.set('ns', 'long', 'v', 60);
      await storage.set('ns', 'forever', 'v');
      assert.equal(await storage.get('ns', 'short'), 'v');
      await sleep(200);
      assert.equal(await storage.get('ns', 'short'), undefined);
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
      assert.equal(await storage.expire('ns', 'a', 0.15), true);
      await storage.set('ns', 'b', 'v', 0.15);
      assert.equal(await storage.expire('ns', 'b', undefined), true, 'undefined makes it permanent');
      await sleep(200);
      assert.equal(await storage.get('ns', 'a'), undefined);
      assert.equal(await storage.get('ns', 'b'), 'v');
      assert.equal(await storage.expire('ns', 'a', 60), false, 'an expired entry cannot be revived');
      assert.equal(await storage.get('ns', 'a'), undefined);
    });

    test('consume returns the value to exactly one of 20 concurrent callers', async () => {
      await storage.set('codes', 'c1', { user: 'u1' });
      const results = await Promise.all(Array.from({ length: 20 }, () => storage.consume('codes', 'c1')));
      assert.deepEqual(results.filter((result) => result !== undefined), [{ user: 'u1' }]);
      assert.equal(await storage.get('codes', 'c1'), undefined);
      assert.equal(await storage.consume('codes', 'missing'), undefined);
    });

    test('increment counts within a fixed window', async () => {
      assert.equal(await storage.increment('rate', 'ip', 0.4), 1);
      assert.equal(await storage.increment('rate', 'ip', 0.4), 2);
      assert.equal(await storage.get('rate', 'ip'), 2, 'a counter reads as a number');
      await sleep(250);
      assert.equal(await storage.increment('rate', 'ip', 0.4), 3, 'later increments do not extend the window');
      await sleep(250); // 0.5 s after the window opened
      assert.equal(await storage.increment('rate', 'ip', 0.4), 1, 'an expired window restarts at 1');
      assert.equal(await storage.increment('rate', 'ip', 0.4), 2);
      assert.equal(await storage.increment('rate', 'other', 0.4), 1, 'counters are per key');
    });

    test('concurrent increments are not lost', async () => {
      const counts = await Promise.all(Array.from({ length: 20 }, () => storage.increment('rate', 'k', 60)));
      assert.deepEqual(counts.toSorted((a, b) => a - b), Array.from({ length: 20 }, (_, i) => i + 1));
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
      await storage.addToSet('idx', 'g', 'a', 0.3);
      await storage.addToSet('idx', 'g', 'b', 0.05); // shorter: must not shorten the set
      await sleep(150);
      assert.deepEqual((await storage.members('idx', 'g')).toSorted(), ['a', 'b']);
      await sleep(200);
      assert.deepEqual(await storage.members('idx', 'g'), []);
      await storage.addToSet('idx', 'g', 'c', 60);
      assert.deepEqual(await storage.members('idx', 'g'), ['c'], 'expired members do not come back');

      await storage.addToSet('idx', 'h', 'a', 0.15);
      await storage.addToSet('idx', 'h', 'b'); // no TTL: the set becomes permanent
      await storage.addToSet('idx', 'h', 'c', 0.05);
      await sleep(200);
      assert.deepEqual((await storage.members('idx', 'h')).toSorted(), ['a', 'b', 'c']);

      assert.equal(await storage.expire('idx', 'h', 0.05), true, 'expire() applies to sets');
      await sleep(100);
      assert.deepEqual(await storage.members('idx', 'h'), []);
    });

    test('sweep removes expired entries and sets, and keeps live ones', async () => {
      await storage.set('ns', 'expired', 'v', 0.05);
      await storage.increment('rate', 'expired', 0.05);
      await storage.addToSet('idx', 'expired', 'm1', 0.05);
      await storage.addToSet('idx', 'expired', 'm2', 0.05);
      await storage.set('ns', 'live', 'v', 60);
      await storage.set('ns', 'forever', 'v');
      await storage.addToSet('idx', 'live', 'm', 60);
      await sleep(100);
      await storage.sweep();
      assert.equal(backend.rowCount(storage), 3);
      assert.equal(await storage.get('ns', 'live'), 'v');
      assert.equal(await storage.get('ns', 'forever'), 'v');
      assert.deepEqual(await storage.members('idx', 'live'), ['m']);
    });

    test('startSweeper sweeps on its interval until stopped', async () => {
      await storage.set('ns', 'expired', 'v', 0.02);
      const stop = startSweeper(storage, 30);
      try {
        await sleep(200);
        assert.equal(backend.rowCount(storage), 0);
      } finally {
        stop();
      }
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
    assert.throws(() => new SqliteStorage(path), /newer than this gateway supports/);
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
