/**
 * One storage interface for everything the gateway keeps: oidc-provider's models (clients, grants,
 * codes, refresh tokens, interactions), users, IdP tokens, keys and counters.
 *
 * The shape is chosen so that Redis can implement it one-to-one (GET/SET EX/GETDEL/INCR/SADD), which is
 * what lets several replicas share state: nothing a caller needs may live only in one process's memory.
 *
 * Values are JSON-serialisable. A TTL is in seconds; `undefined` means "no expiry". Expired entries
 * must never be returned, whether or not a sweeper has removed them yet.
 */
export interface Storage {
  get<T = unknown>(namespace: string, key: string): Promise<T | undefined>;
  set(namespace: string, key: string, value: unknown, ttlSeconds?: number): Promise<void>;
  /** Changes the expiry of an existing entry; returns false when there is no live entry. */
  expire(namespace: string, key: string, ttlSeconds: number | undefined): Promise<boolean>;
  delete(namespace: string, key: string): Promise<void>;
  /** Atomically returns and removes an entry: of two concurrent callers, exactly one gets the value. */
  consume<T = unknown>(namespace: string, key: string): Promise<T | undefined>;
  /**
   * Atomically adds 1 and returns the new count. The TTL starts when the counter is created and is not
   * extended by later increments (a fixed window, as rate limits need).
   */
  increment(namespace: string, key: string, ttlSeconds: number): Promise<number>;
  /**
   * Stores the value only when no live entry exists under the key (SET NX): of several replicas claiming
   * one key at once, exactly one gets `true`. Used for one-time claims (keys, the demo user, locks).
   */
  setIfAbsent(namespace: string, key: string, value: unknown, ttlSeconds?: number): Promise<boolean>;
  /**
   * Every live entry of a namespace (values only, not sets), in no particular order. For administration
   * and start-up migrations, never for a request's hot path: Redis answers it with SCAN.
   */
  list<T = unknown>(namespace: string): Promise<Array<{ key: string; value: T }>>;
  /** Resolves when the backend answers; rejects when it cannot be reached (readiness checks). */
  ping(): Promise<void>;
  /** Adds a member to a set (used as a secondary index, e.g. grant id -> token ids). */
  addToSet(namespace: string, key: string, member: string, ttlSeconds?: number): Promise<void>;
  members(namespace: string, key: string): Promise<string[]>;
  /** Removes expired entries; backends that expire natively may do nothing. */
  sweep(): Promise<void>;
  /**
   * Rewrites the backend's files so that entries already deleted cannot be read back from them (a
   * deleted SQLite row stays in the file's free space until then). For one-time use after deleting
   * secrets, such as the start-up migration of plaintext credentials; never on a request path. Resolves
   * to false when part of it could not finish now (another process was reading). Backends that keep
   * nothing on disk omit it.
   */
  scrub?(): Promise<boolean>;
  close(): Promise<void>;
}
