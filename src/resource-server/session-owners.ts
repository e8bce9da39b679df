/**
 * Streamable HTTP sessions bound to their owner: the user and OAuth client whose token opened them.
 *
 * MCP Transports (Session Management) lets a server hand out an `Mcp-Session-Id`, and an upstream
 * knows nothing of the gateway's users, so without this anyone holding a leaked session id could ride
 * the session with their own valid token. The gateway records the owner when the upstream answers with
 * a session id, and a request that names the session with another user's or client's token gets what
 * an unknown session gets: 404 with a JSON-RPC error (MCP Transports: "the server MUST respond … with
 * HTTP 404 Not Found", and the client starts a new session). (The stdio bridge keeps the owner on its
 * own sessions: src/stdio/streamable.ts.)
 *
 * Replicas: each record is written to storage (under the SHA-256 of server and session id, never the
 * id itself) with a TTL, so a replica that has not seen the session reads it once and then knows it
 * locally. The hot path, a session this instance knows, is one map lookup: no storage read. A session
 * no store knows (opened before this existed, or whose record expired) is passed on; the upstream
 * decides whether it exists. The record is written in the background as the upstream's answer goes
 * back, so a second replica asked within that moment also passes the request on.
 */
import { createHash } from 'node:crypto';
import type { Clock } from '../core/clock.ts';
import type { Logger } from '../observability/logger.ts';
import { NS } from '../storage/records.ts';
import type { Storage } from '../storage/types.ts';

/** How long a session is remembered after its owner was last written (written again at half-life while in use). */
export const SESSION_OWNER_TTL_SECONDS = 24 * 3600;
/** Sessions kept in this instance's map; the oldest are dropped first (they remain in storage). */
export const SESSION_OWNER_LOCAL_LIMIT = 50_000;

export type SessionVerdict = 'owner' | 'stranger' | 'unknown';

interface LocalEntry {
  owner: string;
  /** Clock milliseconds of the last storage write. */
  writtenAt: number;
}

export interface SessionOwnersOptions {
  storage?: Storage;
  clock: Clock;
  logger: Logger;
  ttlSeconds?: number;
  localLimit?: number;
}

export class SessionOwners {
  readonly #local = new Map<string, LocalEntry>();
  readonly #storage: Storage | undefined;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #ttlSeconds: number;
  readonly #localLimit: number;

  constructor(options: SessionOwnersOptions) {
    this.#storage = options.storage;
    this.#clock = options.clock;
    this.#logger = options.logger;
    this.#ttlSeconds = options.ttlSeconds ?? SESSION_OWNER_TTL_SECONDS;
    this.#localLimit = options.localLimit ?? SESSION_OWNER_LOCAL_LIMIT;
  }

  /** The owner key of a request: user and OAuth client. */
  static ownerOf(userId: string, clientId: string): string {
    return `${userId}\n${clientId}`;
  }

  /** Is `owner` the owner of this session? Synchronous when this instance knows the session. */
  check(server: string, sessionId: string, owner: string): SessionVerdict | Promise<SessionVerdict> {
    const entry = this.#local.get(localKey(server, sessionId));
    if (entry !== undefined) {
      if (entry.owner !== owner) return 'stranger';
      // Still in use: keep the stored record alive, at most once per half-life.
      if (this.#clock.now() - entry.writtenAt > (this.#ttlSeconds * 1000) / 2) this.#write(server, sessionId, entry);
      return 'owner';
    }
    if (this.#storage === undefined) return 'unknown';
    return this.#storage.get<string>(NS.sessionOwners, storageKey(server, sessionId)).then((stored) => {
      if (typeof stored !== 'string') return 'unknown';
      this.#remember(server, sessionId, { owner: stored, writtenAt: this.#clock.now() });
      return stored === owner ? 'owner' : 'stranger';
    });
  }

  /** The upstream answered `owner`'s request with this session id: the session is theirs. */
  record(server: string, sessionId: string, owner: string): void {
    const key = localKey(server, sessionId);
    const known = this.#local.get(key);
    // A server may repeat the header on every answer; only a new session (or a first sighting) is written.
    if (known !== undefined && known.owner === owner) return;
    if (known !== undefined) {
      // The check let this request through as the owner, so a different owner here means the upstream
      // reused an id; the first owner keeps it.
      return;
    }
    const entry = { owner, writtenAt: this.#clock.now() };
    this.#remember(server, sessionId, entry);
    this.#write(server, sessionId, entry);
  }

  /** The session ended (DELETE answered): forgotten locally; the stored record expires by its TTL. */
  forget(server: string, sessionId: string): void {
    this.#local.delete(localKey(server, sessionId));
  }

  #remember(server: string, sessionId: string, entry: LocalEntry): void {
    const key = localKey(server, sessionId);
    if (this.#local.size >= this.#localLimit && !this.#local.has(key)) {
      const oldest = this.#local.keys().next().value;
      if (oldest !== undefined) this.#local.delete(oldest);
    }
    this.#local.set(key, entry);
  }

  #write(server: string, sessionId: string, entry: LocalEntry): void {
    entry.writtenAt = this.#clock.now();
    const storage = this.#storage;
    if (storage === undefined) return;
    storage.set(NS.sessionOwners, storageKey(server, sessionId), entry.owner, this.#ttlSeconds).catch((error: unknown) => {
      this.#logger.warn({ err: error, server }, 'session owner could not be stored; other replicas will not know this session');
    });
  }
}

function localKey(server: string, sessionId: string): string {
  return `${server}\n${sessionId}`;
}

/** A session id lets its holder act in the session, so it is stored only as a digest (docs/tokens.md). */
function storageKey(server: string, sessionId: string): string {
  return createHash('sha256').update(localKey(server, sessionId)).digest('base64url');
}
