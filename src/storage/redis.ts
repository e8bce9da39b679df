/**
 * Storage in Redis: what lets several gateway replicas share clients, grants, tokens and users
 * (docs/storage.md says which Redis settings that needs: AOF persistence, `noeviction`).
 *
 * Each operation is one command or one Lua script, so its atomicity holds across replicas, not only
 * across this process's callbacks: consume is GETDEL; increment, setIfAbsent, expire and addToSet are
 * scripts (a GET-then-SET from the client would race with another replica). The layout, the scripts
 * and why the gateway's clock decides expiry while Redis's TTL only reclaims space are described in
 * `redis-scripts.ts`; the client and its fail-fast settings in `redis-connection.ts`.
 *
 * When Redis cannot be reached, every call fails within `commandTimeoutMs` (at once while the client
 * knows it is disconnected) with ERR_STORAGE_UNAVAILABLE, which the HTTP layer answers with 503 and
 * `Retry-After`; nothing waits in a queue for Redis to come back.
 *
 * Not for Redis Cluster: the sweep script takes many keys at once, which Cluster refuses across slots.
 * A single primary (with replicas and Sentinel or a managed failover) is what this is built for.
 */
import { createHash } from 'node:crypto';
import { ErrorReply } from '@redis/client';
import { type Clock, systemClock } from '../core/clock.ts';
import { ErrorCode, GatewayError } from '../core/errors.ts';
import {
  classifyRedisError,
  createRedisClient,
  type RedisClient,
  type RedisConnectionOptions,
  redactedRedisUrl,
  settingsWarnings,
} from './redis-connection.ts';
import {
  ADD_TO_SET_SCRIPT,
  CORRUPT,
  decodeEnvelope,
  EXPIRE_SCRIPT,
  encodeEnvelope,
  escapeGlob,
  INCREMENT_SCRIPT,
  NOT_A_COUNTER,
  SET_EXPIRY_FIELD,
  SET_IF_ABSENT_SCRIPT,
  SET_MEMBER_PREFIX,
  SWEEP_SCRIPT,
} from './redis-scripts.ts';
import type { Storage } from './types.ts';
import { decodeValue, encodeValue, expiryFrom, isLive } from './values.ts';

export interface RedisStorageOptions extends RedisConnectionOptions {
  /** Put before every key, so several gateways (or other applications) can share one Redis. */
  keyPrefix: string;
  /** Decides which entries are live and what sweep() removes; tests pass one they can move. */
  clock?: Clock;
  /** Where connection losses and recoveries are reported (once each, not per retry). */
  log?: { warn(object: object, message: string): void; info(object: object, message: string): void };
}

/** Keys per SCAN step and per sweep script: large enough to be quick, small enough not to block Redis. */
const SCAN_BATCH = 500;

type Reply = string | number | null | Reply[];

interface Script {
  text: string;
  sha1: string;
}

function script(text: string): Script {
  return { text, sha1: createHash('sha1').update(text).digest('hex') };
}

const SCRIPTS = {
  expire: script(EXPIRE_SCRIPT),
  increment: script(INCREMENT_SCRIPT),
  setIfAbsent: script(SET_IF_ABSENT_SCRIPT),
  addToSet: script(ADD_TO_SET_SCRIPT),
  sweep: script(SWEEP_SCRIPT),
};

export class RedisStorage implements Storage {
  readonly #client: RedisClient;
  readonly #prefix: string;
  readonly #clock: Clock;
  readonly #commandTimeoutMs: number;
  #closed = false;

  private constructor(client: RedisClient, options: RedisStorageOptions) {
    this.#client = client;
    this.#prefix = options.keyPrefix;
    this.#clock = options.clock ?? systemClock;
    this.#commandTimeoutMs = options.commandTimeoutMs;
  }

  /**
   * Connects, or fails with ERR_STORAGE_UNAVAILABLE naming the server (never its credentials) when the
   * first attempt does not succeed within `connectTimeoutMs`.
   */
  static async connect(options: RedisStorageOptions): Promise<RedisStorage> {
    let everReady = false;
    let connected = false;
    const client = createRedisClient(options, () => everReady);
    const where = redactedRedisUrl(options.url);
    // Without a listener an 'error' event would crash the process; the client reconnects by itself.
    client.on('error', (error: Error) => {
      if (!connected) return;
      connected = false;
      options.log?.warn({ redis: where, reason: error.message }, 'redis connection lost; commands fail until it is back');
    });
    client.on('ready', () => {
      if (everReady && !connected) options.log?.info({ redis: where }, 'redis connection restored');
      everReady = true;
      connected = true;
    });
    try {
      await client.connect();
    } catch (error) {
      client.destroy();
      const reason = error instanceof Error ? error.message : String(error);
      throw new GatewayError(ErrorCode.STORAGE_UNAVAILABLE, `cannot connect to Redis at ${where}: ${reason}`, { cause: error });
    }
    const storage = new RedisStorage(client, options);
    for (const warning of await settingsWarnings((args) => storage.#send(args))) options.log?.warn({ redis: where }, warning);
    return storage;
  }

  async get<T = unknown>(namespace: string, key: string): Promise<T | undefined> {
    const text = await this.#command(['GET', this.#key(namespace, key)]);
    return this.#liveValue<T>(namespace, key, text);
  }

  async set(namespace: string, key: string, value: unknown, ttlSeconds?: number): Promise<void> {
    const now = this.#clock.now();
    const expiresAt = expiryFrom(now, ttlSeconds);
    const redisKey = this.#key(namespace, key);
    const stored = encodeEnvelope(expiresAt, encodeValue(value));
    if (expiresAt === null) await this.#command(['SET', redisKey, stored]);
    else if (expiresAt <= now)
      await this.#command(['DEL', redisKey]); // stored already expired = absent
    else await this.#command(['SET', redisKey, stored, 'PX', String(expiresAt - now)]);
  }

  async expire(namespace: string, key: string, ttlSeconds: number | undefined): Promise<boolean> {
    const now = this.#clock.now();
    const expiresAt = expiryFrom(now, ttlSeconds);
    const reply = await this.#eval(SCRIPTS.expire, [this.#key(namespace, key)], [now, expiresAt ?? '', remaining(expiresAt, now)]);
    return reply === 1;
  }

  async delete(namespace: string, key: string): Promise<void> {
    await this.#command(['DEL', this.#key(namespace, key)]);
  }

  /** GETDEL: of any number of callers on any replicas, one gets the value. An expired one is removed unseen. */
  async consume<T = unknown>(namespace: string, key: string): Promise<T | undefined> {
    const text = await this.#command(['GETDEL', this.#key(namespace, key)]);
    return this.#liveValue<T>(namespace, key, text);
  }

  async increment(namespace: string, key: string, ttlSeconds: number): Promise<number> {
    const now = this.#clock.now();
    const expiresAt = expiryFrom(now, ttlSeconds) as number;
    const reply = await this.#eval(SCRIPTS.increment, [this.#key(namespace, key)], [now, expiresAt, expiresAt - now]);
    if (typeof reply !== 'number') throw new GatewayError(ErrorCode.STORAGE_CORRUPT, `increment of ${namespace}/${key} returned no count`);
    return reply;
  }

  async setIfAbsent(namespace: string, key: string, value: unknown, ttlSeconds?: number): Promise<boolean> {
    const now = this.#clock.now();
    const expiresAt = expiryFrom(now, ttlSeconds);
    const stored = encodeEnvelope(expiresAt, encodeValue(value));
    const reply = await this.#eval(SCRIPTS.setIfAbsent, [this.#key(namespace, key)], [now, stored, remaining(expiresAt, now)]);
    return reply === 1;
  }

  /** SCAN over the namespace's keys (strings only: sets are hashes), then MGET per batch. */
  async list<T = unknown>(namespace: string): Promise<Array<{ key: string; value: T }>> {
    const base = this.#key(namespace, '');
    const found = new Map<string, T>(); // SCAN may return a key twice
    for await (const keys of this.#scan(`${escapeGlob(base)}*`, 'string')) {
      const texts = (await this.#command(['MGET', ...keys])) as Array<string | null>;
      keys.forEach((redisKey, index) => {
        const key = redisKey.slice(base.length);
        const value = this.#liveValue<T>(namespace, key, texts[index] ?? null);
        if (value !== undefined) found.set(key, value);
      });
    }
    return [...found].map(([key, value]) => ({ key, value }));
  }

  async ping(): Promise<void> {
    await this.#command(['PING']);
  }

  async addToSet(namespace: string, key: string, member: string, ttlSeconds?: number): Promise<void> {
    const now = this.#clock.now();
    await this.#eval(SCRIPTS.addToSet, [this.#key(namespace, key)], [now, member, expiryFrom(now, ttlSeconds) ?? '']);
  }

  async members(namespace: string, key: string): Promise<string[]> {
    const fields = (await this.#command(['HGETALL', this.#key(namespace, key)])) as string[];
    let expiry: string | undefined;
    const members: string[] = [];
    for (let i = 0; i < fields.length; i += 2) {
      const field = fields[i] as string;
      if (field === SET_EXPIRY_FIELD) expiry = fields[i + 1];
      else if (field.startsWith(SET_MEMBER_PREFIX)) members.push(field.slice(SET_MEMBER_PREFIX.length));
    }
    if (expiry === undefined) return [];
    const expiresAt = expiry === '' ? null : Number(expiry);
    return isLive(expiresAt, this.#clock.now()) ? members : [];
  }

  /**
   * Removes entries whose expiry by the gateway's clock has passed. With the system clock Redis's own
   * TTL has normally removed them already, so this finds little; it walks the prefix with SCAN, which
   * never blocks Redis for long.
   */
  async sweep(): Promise<void> {
    for await (const keys of this.#scan(`${escapeGlob(this.#prefix)}*`)) {
      await this.#eval(SCRIPTS.sweep, keys, [this.#clock.now()]);
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    // close() lets in-flight replies arrive, for as long as a command may take; with Redis gone or
    // hung there is nothing worth waiting for.
    if (this.#client.isReady) {
      await withDeadline(this.#client.close(), this.#commandTimeoutMs).catch(() => this.#client.destroy());
    } else {
      this.#client.destroy();
    }
  }

  #key(namespace: string, key: string): string {
    return `${this.#prefix}${namespace}:${key}`;
  }

  #liveValue<T>(namespace: string, key: string, text: Reply): T | undefined {
    if (text === null) return undefined;
    const envelope = typeof text === 'string' ? decodeEnvelope(text) : undefined;
    if (!envelope) throw new GatewayError(ErrorCode.STORAGE_CORRUPT, `storage entry ${namespace}/${key} is not a gateway value`);
    return isLive(envelope.expiresAt, this.#clock.now()) ? decodeValue<T>(envelope.json) : undefined;
  }

  /** Batches of keys matching `pattern` (and `type`, when given), until SCAN has been all the way round. */
  async *#scan(pattern: string, type?: string): AsyncGenerator<string[]> {
    let cursor = '0';
    do {
      const args = ['SCAN', cursor, 'MATCH', pattern, 'COUNT', String(SCAN_BATCH), ...(type ? ['TYPE', type] : [])];
      const [next, keys] = (await this.#command(args)) as [string, string[]];
      if (keys.length > 0) yield keys;
      cursor = next;
    } while (cursor !== '0');
  }

  /** EVALSHA, and EVAL once when the server has not cached the script yet (a fresh or restarted Redis). */
  async #eval(code: Script, keys: string[], args: Array<string | number>): Promise<Reply> {
    const rest = [String(keys.length), ...keys, ...args.map(String)];
    try {
      return await this.#send(['EVALSHA', code.sha1, ...rest]);
    } catch (error) {
      if (!(error instanceof ErrorReply && error.message.startsWith('NOSCRIPT'))) throw this.#failure(error);
    }
    try {
      return await this.#send(['EVAL', code.text, ...rest]);
    } catch (error) {
      throw this.#failure(error);
    }
  }

  async #command(args: string[]): Promise<Reply> {
    try {
      return await this.#send(args);
    } catch (error) {
      throw this.#failure(error);
    }
  }

  /**
   * node-redis's own command timeout stops counting once a command is written to the socket, so a Redis
   * that accepted the command and then stopped answering (paused, partitioned) would hold the request
   * forever. The deadline here covers the whole round trip; a late reply is dropped.
   */
  #send(args: string[]): Promise<Reply> {
    // At the deadline the command is also withdrawn from node-redis's queue if it was not written yet
    // (socket backpressure), so a caller that was told "unavailable" does not see it land later.
    const abort = new AbortController();
    return withDeadline(this.#client.sendCommand(args, { abortSignal: abort.signal }) as Promise<Reply>, this.#commandTimeoutMs, () => abort.abort());
  }

  /** The error a caller sees: the script's own refusals as the other backends raise them, outages as 503s. */
  #failure(error: unknown): unknown {
    if (error instanceof ErrorReply) {
      if (error.message.startsWith(NOT_A_COUNTER)) return new TypeError(`storage entry is not a counter (${error.message})`, { cause: error });
      if (error.message.startsWith(CORRUPT)) return new GatewayError(ErrorCode.STORAGE_CORRUPT, error.message, { cause: error });
    }
    return classifyRedisError(error);
  }
}

/**
 * `work`'s result, or a rejection once `ms` have passed without one (`onExpiry` runs then). One timer,
 * cleared with the answer: a timer left to fire after every command is what this replaces (redis-connection.ts).
 */
function withDeadline<T>(work: Promise<T>, ms: number, onExpiry?: () => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error(`no answer within ${ms} ms`));
      onExpiry?.();
    }, ms);
    work.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}

/** The remaining lifetime in milliseconds that Redis's own TTL is set to ('' = no TTL). */
function remaining(expiresAt: number | null, now: number): string {
  return expiresAt === null ? '' : String(expiresAt - now);
}
