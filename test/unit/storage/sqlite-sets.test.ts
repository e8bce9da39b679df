/**
 * SQLite sets (the grant index behind revocation): adding a member costs the same whatever the set's
 * size, and a database written by schema version 1 (expiry on every member row) is migrated with its
 * sets intact. The behaviour every backend shares is in storage.test.ts.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, before, describe, test } from 'node:test';
import { SqliteStorage } from '../../../src/storage/sqlite.ts';
import { TestClock } from '../../support/clock.ts';

let tempDir = '';
before(async () => {
  tempDir = await mkdtemp(join(tmpdir(), 'sqlite-sets-test-'));
});
after(async () => {
  await rm(tempDir, { recursive: true, force: true });
});

/** Pages SQLite appended to the write-ahead log since the last truncating checkpoint (https://sqlite.org/walformat.html). */
async function walFrames(path: string): Promise<number> {
  const size = (await stat(`${path}-wal`)).size;
  const pageSize = 4096;
  return size === 0 ? 0 : (size - 32) / (24 + pageSize);
}

function truncateWal(path: string): void {
  const db = new DatabaseSync(path);
  try {
    const result = db.prepare('PRAGMA wal_checkpoint(TRUNCATE)').get();
    assert.equal(Number(result?.busy), 0);
  } finally {
    db.close();
  }
}

describe('SqliteStorage sets', () => {
  test('adding a member to a large set writes a few pages, not the whole set', async () => {
    const path = join(tempDir, 'large-set', 'gateway.db');
    const clock = new TestClock();
    const storage = new SqliteStorage(path, { clock });
    try {
      // A grant refreshed every few minutes for days: each refresh token joins its grant's index
      // with a later expiry than the one before.
      for (let i = 0; i < 1000; i++) {
        clock.advance(1000);
        await storage.addToSet('oidc:grant-index', 'grant', `RefreshToken:${'t'.repeat(40)}${i}`, 30 * 86400);
      }
      truncateWal(path);
      clock.advance(1000);
      await storage.addToSet('oidc:grant-index', 'grant', `RefreshToken:${'t'.repeat(40)}new`, 30 * 86400);
      const frames = await walFrames(path);
      assert.ok(frames <= 6, `one addToSet wrote ${frames} pages`);
      assert.equal((await storage.members('oidc:grant-index', 'grant')).length, 1001);
      // The whole set still lives as long as its latest member, and then goes as one.
      clock.advance(30 * 86400 * 1000 - 1);
      assert.equal((await storage.members('oidc:grant-index', 'grant')).length, 1001);
      clock.advance(1);
      assert.deepEqual(await storage.members('oidc:grant-index', 'grant'), []);
    } finally {
      await storage.close();
    }
  });

  test('a version 1 database keeps its sets and their expiry', async () => {
    const path = join(tempDir, 'v1', 'gateway.db');
    const clock = new TestClock();
    const now = clock.now();
    await new SqliteStorage(path, { clock }).close();
    // Rebuild the file as version 1 wrote it: the set's expiry on each member row.
    const db = new DatabaseSync(path);
    db.exec(`
      DROP TABLE set_member; DROP TABLE IF EXISTS set_expiry;
      CREATE TABLE set_member (namespace TEXT NOT NULL, key TEXT NOT NULL, member TEXT NOT NULL, expires_at INTEGER,
        PRIMARY KEY (namespace, key, member)) WITHOUT ROWID;
      CREATE INDEX set_member_expires_at ON set_member (expires_at) WHERE expires_at IS NOT NULL;
      PRAGMA user_version = 1;`);
    const insert = db.prepare('INSERT INTO set_member VALUES (?, ?, ?, ?)');
    insert.run('idx', 'timed', 'a', now + 10_000);
    insert.run('idx', 'timed', 'b', now + 10_000);
    insert.run('idx', 'forever', 'c', null);
    insert.run('idx', 'gone', 'd', now - 1);
    db.prepare("INSERT INTO kv VALUES ('ns', 'k', '\"v\"', NULL)").run();
    db.close();

    const storage = new SqliteStorage(path, { clock });
    try {
      assert.deepEqual(await storage.members('idx', 'timed'), ['a', 'b']);
      assert.deepEqual(await storage.members('idx', 'forever'), ['c']);
      assert.deepEqual(await storage.members('idx', 'gone'), []);
      assert.equal(await storage.get('ns', 'k'), 'v');
      await storage.addToSet('idx', 'gone', 'e', 60);
      assert.deepEqual(await storage.members('idx', 'gone'), ['e'], 'an expired set is replaced, not revived');
      clock.advance(10_000);
      assert.deepEqual(await storage.members('idx', 'timed'), []);
      assert.deepEqual(await storage.members('idx', 'forever'), ['c']);
    } finally {
      await storage.close();
    }
    const reopened = new DatabaseSync(path, { readOnly: true });
    try {
      assert.equal(Number(reopened.prepare('PRAGMA user_version').get()?.user_version), 2);
    } finally {
      reopened.close();
    }
  });
});
