/**
 * In-process storage for tests and single-instance development. Everything is lost on exit and nothing
 * is shared between replicas, so it is never the right choice for a deployment with more than one.
 *
 * Atomicity comes for free: every method does its reads and writes synchronously before its promise
 * settles, and JavaScript runs one callback at a time, so no other call can interleave.
 */
import { type Clock, systemClock } from '../core/clock.ts';
import type { Storage } from './types.ts';
import { decodeValue, encodeValue, expiryFrom, extendedSetExpiry, isLive } from './values.ts';

interface Entry {
  value: string; // JSON text, see encodeValue
  expiresAt: number | null;
}

interface SetEntry {
  members: Set<string>;
  expiresAt: number | null;
}

/** namespace -> key -> T; an empty inner map is removed so namespaces do not accumulate. */
class NamespacedMap<T> {
  readonly #maps = new Map<string, Map<string, T>>();

  get(namespace: string, key: string): T | undefined {
    return this.#maps.get(namespace)?.get(key);
  }

  set(namespace: string, key: string, value: T): void {
    let inner = this.#maps.get(namespace);
    if (!inner) {
      inner = new Map();
      this.#maps.set(namespace, inner);
    }
    inner.set(key, value);
  }

  delete(namespace: string, key: string): void {
    const inner = this.#maps.get(namespace);
    if (!inner) return;
    inner.delete(key);
    if (inner.size === 0) this.#maps.delete(namespace);
  }

  entriesOf(namespace: string): Iterable<[string, T]> {
    return this.#maps.get(namespace)?.entries() ?? [];
  }

  /** Removes every entry the predicate selects. */
  deleteWhere(predicate: (value: T) => boolean): void {
    for (const [namespace, inner] of this.#maps) {
      for (const [key, value] of inner) if (predicate(value)) inner.delete(key);
      if (inner.size === 0) this.#maps.delete(namespace);
    }
  }

  get size(): number {
    let total = 0;
    for (const inner of this.#maps.values()) total += inner.size;
    return total;
  }
}

export interface MemoryStorageOptions {
  /** Decides which entries are live and what sweep() removes; tests pass one they can move. */
  clock?: Clock;
}

export class MemoryStorage implements Storage {
  readonly #entries = new NamespacedMap<Entry>();
  readonly #sets = new NamespacedMap<SetEntry>();
  readonly #clock: Clock;

  constructor(options: MemoryStorageOptions = {}) {
    this.#clock = options.clock ?? systemClock;
  }

  /** Entries and sets held, live or expired; lets tests and metrics see what `sweep` removed. */
  get size(): number {
    return this.#entries.size + this.#sets.size;
  }

  async get<T = unknown>(namespace: string, key: string): Promise<T | undefined> {
    const entry = this.#liveEntry(namespace, key, this.#clock.now());
    return entry ? decodeValue<T>(entry.value) : undefined;
  }

  async set(namespace: string, key: string, value: unknown, ttlSeconds?: number): Promise<void> {
    const entry: Entry = { value: encodeValue(value), expiresAt: expiryFrom(this.#clock.now(), ttlSeconds) };
    this.#entries.set(namespace, key, entry);
  }

  /** Applies to a value or a set under the key, as EXPIRE does in Redis's single keyspace. */
  async expire(namespace: string, key: string, ttlSeconds: number | undefined): Promise<boolean> {
    const now = this.#clock.now();
    const expiresAt = expiryFrom(now, ttlSeconds);
    let found = false;
    const entry = this.#liveEntry(namespace, key, now);
    if (entry) {
      entry.expiresAt = expiresAt;
      found = true;
    }
    const set = this.#liveSet(namespace, key, now);
    if (set) {
      set.expiresAt = expiresAt;
      found = true;
    }
    return found;
  }

  /** Removes a value or a set under the key, as DEL does in Redis's single keyspace. */
  async delete(namespace: string, key: string): Promise<void> {
    this.#entries.delete(namespace, key);
    this.#sets.delete(namespace, key);
  }

  async consume<T = unknown>(namespace: string, key: string): Promise<T | undefined> {
    const entry = this.#liveEntry(namespace, key, this.#clock.now());
    if (!entry) return undefined;
    this.#entries.delete(namespace, key);
    return decodeValue<T>(entry.value);
  }

  async increment(namespace: string, key: string, ttlSeconds: number): Promise<number> {
    const now = this.#clock.now();
    const entry = this.#liveEntry(namespace, key, now);
    if (!entry) {
      // A new window starts here; its expiry is fixed for the window's whole life.
      this.#entries.set(namespace, key, { value: '1', expiresAt: expiryFrom(now, ttlSeconds) });
      return 1;
    }
    const current: unknown = decodeValue(entry.value);
    if (!Number.isSafeInteger(current)) throw new TypeError(`storage entry ${namespace}/${key} is not a counter`);
    const next = (current as number) + 1;
    entry.value = String(next);
    return next;
  }

  async setIfAbsent(namespace: string, key: string, value: unknown, ttlSeconds?: number): Promise<boolean> {
    const now = this.#clock.now();
    if (this.#liveEntry(namespace, key, now)) return false;
    this.#entries.set(namespace, key, { value: encodeValue(value), expiresAt: expiryFrom(now, ttlSeconds) });
    return true;
  }

  async list<T = unknown>(namespace: string): Promise<Array<{ key: string; value: T }>> {
    const now = this.#clock.now();
    const live: Array<{ key: string; value: T }> = [];
    for (const [key, entry] of this.#entries.entriesOf(namespace)) {
      if (isLive(entry.expiresAt, now)) live.push({ key, value: decodeValue<T>(entry.value) });
    }
    return live;
  }

  async ping(): Promise<void> {
    // Always reachable: it lives in this process.
  }

  async addToSet(namespace: string, key: string, member: string, ttlSeconds?: number): Promise<void> {
    const now = this.#clock.now();
    const added = expiryFrom(now, ttlSeconds);
    const set = this.#liveSet(namespace, key, now);
    if (!set) {
      // An expired set is replaced, not revived: its old members must not reappear.
      this.#sets.set(namespace, key, { members: new Set([member]), expiresAt: added });
      return;
    }
    set.members.add(member);
    set.expiresAt = extendedSetExpiry(set.expiresAt, added);
  }

  async members(namespace: string, key: string): Promise<string[]> {
    const set = this.#liveSet(namespace, key, this.#clock.now());
    return set ? [...set.members] : [];
  }

  async sweep(): Promise<void> {
    const now = this.#clock.now();
    this.#entries.deleteWhere((entry) => !isLive(entry.expiresAt, now));
    this.#sets.deleteWhere((set) => !isLive(set.expiresAt, now));
  }

  async close(): Promise<void> {
    // Nothing to release; the maps go with the object.
  }

  #liveEntry(namespace: string, key: string, now: number): Entry | undefined {
    const entry = this.#entries.get(namespace, key);
    return entry && isLive(entry.expiresAt, now) ? entry : undefined;
  }

  #liveSet(namespace: string, key: string, now: number): SetEntry | undefined {
    const set = this.#sets.get(namespace, key);
    return set && isLive(set.expiresAt, now) ? set : undefined;
  }
}
