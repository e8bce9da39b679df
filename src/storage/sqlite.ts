/**
 * Storage in one SQLite file through `node:sqlite`: the default, durable across restarts, and safe for
 * several processes on one host sharing the file (WAL lets readers run alongside the single writer).
 *
 * Every operation is one statement or one IMMEDIATE transaction, so its atomicity holds across
 * processes, not only across the callbacks of this one. Times are epoch milliseconds passed in from
 * the injected clock rather than read from SQLite's, so both backends share one notion of "now" (and
 * tests can move it).
 */
import { closeSync, mkdirSync, openSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { DatabaseSync, type SQLInputValue, type StatementSync } from 'node:sqlite';
import { type Clock, systemClock } from '../core/clock.ts';
import { ErrorCode, GatewayError } from '../core/errors.ts';
import type { Storage } from './types.ts';
import { decodeValue, encodeValue, expiryFrom, extendedSetExpiry } from './values.ts';

/** Bumped when the schema changes; a database from a newer gateway is refused rather than misread. */
const SCHEMA_VERSION = 2;

/** How long a statement waits for another process's write lock before failing with SQLITE_BUSY. */
const BUSY_TIMEOUT_MS = 5000;

/** SQLITE_CONSTRAINT_NOTNULL (https://sqlite.org/rescode.html#constraint_notnull). */
const SQLITE_CONSTRAINT_NOTNULL = 1299;

/**
 * A set's expiry, one row per set. Version 1 kept it on every member row and rewrote all of them
 * whenever a member extended it: a grant's token index gains a member at every refresh, so each
 * refresh cost grew with the grant's age (docs/performance.md). Here adding a member writes two rows,
 * whatever the set's size.
 */
const SET_EXPIRY_TABLE = `
  CREATE TABLE IF NOT EXISTS set_expiry (
    namespace  TEXT NOT NULL,
    key        TEXT NOT NULL,
    expires_at INTEGER,                  -- epoch ms; NULL = never
    PRIMARY KEY (namespace, key)
  ) WITHOUT ROWID;
  CREATE INDEX IF NOT EXISTS set_expiry_expires_at ON set_expiry (expires_at) WHERE expires_at IS NOT NULL;
`;

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS kv (
    namespace  TEXT NOT NULL,
    key        TEXT NOT NULL,
    value      TEXT NOT NULL,            -- JSON
    expires_at INTEGER,                  -- epoch ms; NULL = never
    PRIMARY KEY (namespace, key)
  ) WITHOUT ROWID;
  CREATE INDEX IF NOT EXISTS kv_expires_at ON kv (expires_at) WHERE expires_at IS NOT NULL;

  CREATE TABLE IF NOT EXISTS set_member (
    namespace  TEXT NOT NULL,
    key        TEXT NOT NULL,
    member     TEXT NOT NULL,
    PRIMARY KEY (namespace, key, member)
  ) WITHOUT ROWID;
  ${SET_EXPIRY_TABLE}
`;

/** Version 1 to 2: each set's expiry (equal on all its member rows in version 1) moves to set_expiry. */
const MIGRATE_1_TO_2 = `
  ${SET_EXPIRY_TABLE}
  INSERT INTO set_expiry (namespace, key, expires_at)
    SELECT namespace, key, CASE WHEN count(expires_at) < count(*) THEN NULL ELSE max(expires_at) END
    FROM set_member GROUP BY namespace, key;
  DROP INDEX IF EXISTS set_member_expires_at;
  ALTER TABLE set_member DROP COLUMN expires_at;
`;

const LIVE = '(expires_at IS NULL OR expires_at > $now)';
const EXPIRED = '(expires_at IS NOT NULL AND expires_at <= $now)';

/** Every statement the backend runs, prepared once per connection. */
function prepareStatements(db: DatabaseSync) {
  const prepare = (sql: string): StatementSync => db.prepare(sql);
  return {
    get: prepare(`SELECT value FROM kv WHERE namespace = $namespace AND key = $key AND ${LIVE}`),
    set: prepare(`
      INSERT INTO kv (namespace, key, value, expires_at) VALUES ($namespace, $key, $value, $expiresAt)
      ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at`),
    expire: prepare(`UPDATE kv SET expires_at = $expiresAt WHERE namespace = $namespace AND key = $key AND ${LIVE}`),
    delete: prepare('DELETE FROM kv WHERE namespace = $namespace AND key = $key'),
    // One statement finds and removes the row, so of two racing callers only one gets it back.
    consume: prepare(`DELETE FROM kv WHERE namespace = $namespace AND key = $key AND ${LIVE} RETURNING value`),
    // One statement creates or bumps the counter. SET expressions all see the old row, so an expired
    // counter restarts at 1 with a fresh window, and a live one keeps the expiry it was created with.
    // A live non-integer value yields NULL, which the NOT NULL constraint turns into an error.
    increment: prepare(`
      INSERT INTO kv (namespace, key, value, expires_at) VALUES ($namespace, $key, '1', $expiresAt)
      ON CONFLICT (namespace, key) DO UPDATE SET
        value = CASE
          WHEN kv.expires_at IS NOT NULL AND kv.expires_at <= $now THEN '1'
          WHEN json_type(kv.value) = 'integer' THEN kv.value + 1
          ELSE NULL
        END,
        expires_at = CASE
          WHEN kv.expires_at IS NOT NULL AND kv.expires_at <= $now THEN excluded.expires_at
          ELSE kv.expires_at
        END
      RETURNING value`),
    // Inserts over a missing or expired row only; `changes` says whether this caller won the claim.
    setIfAbsent: prepare(`
      INSERT INTO kv (namespace, key, value, expires_at) VALUES ($namespace, $key, $value, $expiresAt)
      ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at
      WHERE kv.expires_at IS NOT NULL AND kv.expires_at <= $now`),
    list: prepare(`SELECT key, value FROM kv WHERE namespace = $namespace AND ${LIVE}`),
    ping: prepare('SELECT 1 AS ok'),
    sweepKv: prepare(`DELETE FROM kv WHERE ${EXPIRED}`),

    setExpiry: prepare('SELECT expires_at FROM set_expiry WHERE namespace = $namespace AND key = $key'),
    putSetExpiry: prepare(`
      INSERT INTO set_expiry (namespace, key, expires_at) VALUES ($namespace, $key, $expiresAt)
      ON CONFLICT (namespace, key) DO UPDATE SET expires_at = excluded.expires_at`),
    addMember: prepare(`
      INSERT INTO set_member (namespace, key, member) VALUES ($namespace, $key, $member)
      ON CONFLICT (namespace, key, member) DO NOTHING`),
    expireSet: prepare(`UPDATE set_expiry SET expires_at = $expiresAt WHERE namespace = $namespace AND key = $key AND ${LIVE}`),
    members: prepare(`
      SELECT member FROM set_member
      WHERE namespace = $namespace AND key = $key
        AND EXISTS (SELECT 1 FROM set_expiry WHERE namespace = $namespace AND key = $key AND ${LIVE})
      ORDER BY member`),
    deleteMembers: prepare('DELETE FROM set_member WHERE namespace = $namespace AND key = $key'),
    deleteSetExpiry: prepare('DELETE FROM set_expiry WHERE namespace = $namespace AND key = $key'),
    sweepMembers: prepare(`DELETE FROM set_member WHERE (namespace, key) IN (SELECT namespace, key FROM set_expiry WHERE ${EXPIRED})`),
    sweepSetExpiry: prepare(`DELETE FROM set_expiry WHERE ${EXPIRED}`),

    // Prepared once: exec() would parse the SQL again on every transaction.
    begin: prepare('BEGIN IMMEDIATE'),
    commit: prepare('COMMIT'),
    rollback: prepare('ROLLBACK'),
  };
}

type Statements = ReturnType<typeof prepareStatements>;
type Params = Record<string, SQLInputValue>;

export interface SqliteStorageOptions {
  /** Decides which rows are live and what sweep() removes; tests pass one they can move. */
  clock?: Clock;
}

export class SqliteStorage implements Storage {
  readonly #db: DatabaseSync;
  readonly #sql: Statements;
  readonly #clock: Clock;
  /** The database file and the inode opened, so `ping` notices the file deleted or replaced under us. */
  readonly #file: { path: string; ino: number } | undefined;
  #closed = false;

  /** `path` is a file (created with its directory if missing) or `:memory:`. */
  constructor(path: string, options: SqliteStorageOptions = {}) {
    this.#clock = options.clock ?? systemClock;
    if (path !== ':memory:') createPrivateFile(path);
    this.#db = new DatabaseSync(path);
    this.#file = path === ':memory:' ? undefined : { path, ino: statSync(path).ino };
    try {
      this.#db.exec(`PRAGMA busy_timeout = ${BUSY_TIMEOUT_MS}`);
      // WAL: readers never block the writer and a crash cannot corrupt the file. With WAL, NORMAL sync
      // is still crash-safe; only a power loss may drop the last commits (https://sqlite.org/wal.html).
      this.#db.exec('PRAGMA journal_mode = WAL');
      this.#db.exec('PRAGMA synchronous = NORMAL');
      this.#migrate();
      this.#sql = prepareStatements(this.#db);
    } catch (error) {
      this.#db.close();
      throw error;
    }
  }

  async get<T = unknown>(namespace: string, key: string): Promise<T | undefined> {
    const row = this.#sql.get.get({ namespace, key, now: this.#clock.now() });
    return row ? decodeValue<T>(textColumn(row, 'value')) : undefined;
  }

  async set(namespace: string, key: string, value: unknown, ttlSeconds?: number): Promise<void> {
    const expiresAt = expiryFrom(this.#clock.now(), ttlSeconds);
    this.#sql.set.run({ namespace, key, value: encodeValue(value), expiresAt });
  }

  /** Applies to a value or a set under the key, as EXPIRE does in Redis's single keyspace. */
  async expire(namespace: string, key: string, ttlSeconds: number | undefined): Promise<boolean> {
    const now = this.#clock.now();
    const params: Params = { namespace, key, now, expiresAt: expiryFrom(now, ttlSeconds) };
    return this.#transaction(() => {
      const values = Number(this.#sql.expire.run(params).changes);
      const members = Number(this.#sql.expireSet.run(params).changes);
      return values + members > 0;
    });
  }

  /** Removes a value or a set under the key, as DEL does in Redis's single keyspace. */
  async delete(namespace: string, key: string): Promise<void> {
    this.#transaction(() => {
      this.#sql.delete.run({ namespace, key });
      this.#sql.deleteMembers.run({ namespace, key });
      this.#sql.deleteSetExpiry.run({ namespace, key });
    });
  }

  async consume<T = unknown>(namespace: string, key: string): Promise<T | undefined> {
    const row = this.#sql.consume.get({ namespace, key, now: this.#clock.now() });
    return row ? decodeValue<T>(textColumn(row, 'value')) : undefined;
  }

  async increment(namespace: string, key: string, ttlSeconds: number): Promise<number> {
    const now = this.#clock.now();
    let row: Record<string, unknown> | undefined;
    try {
      row = this.#sql.increment.get({ namespace, key, now, expiresAt: expiryFrom(now, ttlSeconds) });
    } catch (error) {
      if ((error as { errcode?: unknown }).errcode === SQLITE_CONSTRAINT_NOTNULL) {
        throw new TypeError(`storage entry ${namespace}/${key} is not a counter`, { cause: error });
      }
      throw error;
    }
    // The value column has TEXT affinity, so the new count comes back as its decimal text.
    const count = row ? Number(row.value) : Number.NaN;
    if (!Number.isSafeInteger(count)) throw new GatewayError(ErrorCode.STORAGE_CORRUPT, `increment of ${namespace}/${key} returned no count`);
    return count;
  }

  async setIfAbsent(namespace: string, key: string, value: unknown, ttlSeconds?: number): Promise<boolean> {
    const now = this.#clock.now();
    const result = this.#sql.setIfAbsent.run({ namespace, key, value: encodeValue(value), expiresAt: expiryFrom(now, ttlSeconds), now });
    return Number(result.changes) > 0;
  }

  async list<T = unknown>(namespace: string): Promise<Array<{ key: string; value: T }>> {
    const rows = this.#sql.list.all({ namespace, now: this.#clock.now() });
    return rows.map((row) => ({ key: textColumn(row, 'key'), value: decodeValue<T>(textColumn(row, 'value')) }));
  }

  /**
   * The connection answers, and the file is still the one opened: a deleted file (a volume unmounted,
   * a clean-up job) would keep answering from the open inode while every write is lost at restart.
   */
  async ping(): Promise<void> {
    if (this.#closed) throw new GatewayError(ErrorCode.STORAGE_UNAVAILABLE, 'the storage is closed');
    this.#sql.ping.get();
    if (this.#file !== undefined && statSync(this.#file.path, { throwIfNoEntry: false })?.ino !== this.#file.ino) {
      throw new GatewayError(ErrorCode.STORAGE_UNAVAILABLE, `the database file ${this.#file.path} was removed or replaced`);
    }
  }

  async addToSet(namespace: string, key: string, member: string, ttlSeconds?: number): Promise<void> {
    const now = this.#clock.now();
    const added = expiryFrom(now, ttlSeconds);
    this.#transaction(() => {
      const row = this.#sql.setExpiry.get({ namespace, key });
      let current = row ? nullableInteger(row.expires_at) : undefined;
      // An expired set is replaced, not revived: its old members must not reappear.
      if (current !== undefined && current !== null && current <= now) {
        this.#sql.deleteMembers.run({ namespace, key });
        current = undefined;
      }
      const expiresAt = extendedSetExpiry(current, added);
      this.#sql.addMember.run({ namespace, key, member });
      if (expiresAt !== current) this.#sql.putSetExpiry.run({ namespace, key, expiresAt });
    });
  }

  async members(namespace: string, key: string): Promise<string[]> {
    const rows = this.#sql.members.all({ namespace, key, now: this.#clock.now() });
    return rows.map((row) => textColumn(row, 'member'));
  }

  async sweep(): Promise<void> {
    const now = this.#clock.now();
    this.#transaction(() => {
      this.#sql.sweepKv.run({ now });
      this.#sql.sweepMembers.run({ now });
      this.#sql.sweepSetExpiry.run({ now });
    });
  }

  /**
   * VACUUM rebuilds the file from the live rows only, so deleted rows' bytes are gone from it (without
   * it they stay in free pages and cells: https://sqlite.org/lang_vacuum.html). In WAL mode the rebuilt
   * pages go to the -wal file first; the TRUNCATE checkpoint copies them into the database and empties
   * the -wal, which otherwise keeps old page images (https://sqlite.org/pragma.html#pragma_wal_checkpoint).
   * `busy` means a reader in another process kept the checkpoint from completing.
   */
  async scrub(): Promise<boolean> {
    this.#db.exec('VACUUM');
    const result = this.#db.prepare('PRAGMA wal_checkpoint(TRUNCATE)').get();
    return Number(result?.busy) === 0;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    // Lets SQLite refresh query-planner statistics it found stale (https://sqlite.org/pragma.html#pragma_optimize).
    this.#db.exec('PRAGMA optimize');
    this.#db.close();
  }

  /**
   * Creates the tables in a fresh file, upgrades a file of an older version, and refuses a file whose
   * schema this code does not know. The version is read inside the write transaction, so of several
   * processes opening one old file together exactly one migrates it.
   */
  #migrate(): void {
    const readVersion = () => Number(this.#db.prepare('PRAGMA user_version').get()?.user_version ?? 0);
    const tooNew = (version: number) =>
      new GatewayError(
        ErrorCode.STORAGE_SCHEMA_TOO_NEW,
        `storage schema version ${version} is newer than this gateway supports (${SCHEMA_VERSION}); upgrade the gateway`,
      );
    const seen = readVersion();
    if (seen > SCHEMA_VERSION) throw tooNew(seen);
    if (seen === SCHEMA_VERSION) return;
    this.#db.exec('BEGIN IMMEDIATE');
    try {
      const version = readVersion();
      if (version > SCHEMA_VERSION) throw tooNew(version);
      if (version === 0) this.#db.exec(SCHEMA);
      else if (version === 1) this.#db.exec(MIGRATE_1_TO_2);
      this.#db.exec(`PRAGMA user_version = ${SCHEMA_VERSION}`);
      this.#db.exec('COMMIT');
    } catch (error) {
      this.#db.exec('ROLLBACK');
      throw error;
    }
  }

  /**
   * Runs `work` in an IMMEDIATE transaction: the write lock is taken up front, so a read inside the
   * transaction cannot be invalidated by another process writing before this one does.
   */
  #transaction<T>(work: () => T): T {
    this.#sql.begin.run();
    try {
      const result = work();
      this.#sql.commit.run();
      return result;
    } catch (error) {
      this.#sql.rollback.run();
      throw error;
    }
  }
}

/**
 * Creates the database file owner-only before SQLite opens it. SQLite gives its -wal and -shm files the
 * mode of the database file, so they inherit 0600 too. An existing file keeps the mode its owner chose.
 */
function createPrivateFile(path: string): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  closeSync(openSync(path, 'a', 0o600));
}

function textColumn(row: Record<string, unknown>, column: string): string {
  const value = row[column];
  if (typeof value !== 'string') throw new GatewayError(ErrorCode.STORAGE_CORRUPT, `storage column ${column} is not text`);
  return value;
}

function nullableInteger(value: unknown): number | null {
  if (value === null) return null;
  const number = Number(value);
  if (!Number.isSafeInteger(number)) throw new GatewayError(ErrorCode.STORAGE_CORRUPT, 'storage expiry is not an integer');
  return number;
}
