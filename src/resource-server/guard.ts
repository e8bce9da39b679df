/**
 * The resource-server decision for one request to one MCP server: is there a bearer token, was it
 * issued by this gateway for this server (RFC 9068 §4, RFC 8707 audience), does it carry the server's
 * scopes, does its user still exist, and (for servers that receive it) is the user's IdP access token
 * available. Shared by the proxy (src/resource-server/index.ts) and forward-auth, so both answer the same
 * request the same way and share one token cache.
 *
 * The common case, a token seen before for a user already read and an IdP token still fresh, is
 * answered synchronously: no promise, no storage read (ARCHITECTURE.md, "Performance").
 */
import type { ServerConfig } from '../config/schema.ts';
import type { Clock } from '../core/clock.ts';
import { protectedResourceMetadataUrlOf, resourceFor } from '../core/resource-uri.ts';
import type { IdpTokenSource } from '../idp/idp-tokens.ts';
import { IdpReauthenticationRequired } from '../idp/idp-tokens.ts';
import type { Logger } from '../observability/logger.ts';
import type { UserRecord } from '../storage/records.ts';
import type { ChallengeParams } from './challenge.ts';
import type { EncodedIdentity, IdentityHeaderPlan } from './identity-headers.ts';
import { appendIdentityHeaders, encodeIdentity, identityHeaderPlan } from './identity-headers.ts';
import type { IdpTokenCache } from './idp-token-cache.ts';
import { createIdpTokenCache } from './idp-token-cache.ts';
import { advertisedScopes } from './protected-resource-metadata.ts';
import type { TokenVerifier, VerifiedToken } from './token-verifier.ts';
import { bearerCandidate, isB64Token } from './token-verifier.ts';

/** What the checks need to know about one MCP server, derived once from its configuration. */
export interface ProtectedServer {
  readonly name: string;
  /** Canonical resource URI: the required token audience. */
  readonly resource: string;
  /** Named in every challenge (RFC 9728 §5.1). */
  readonly resourceMetadataUrl: string;
  /** Scopes a token must hold; also what challenges advertise. */
  readonly scopes: readonly string[];
  readonly identity: IdentityHeaderPlan;
  /** Lowercased request header that carries the user's IdP access token upstream, when configured. */
  readonly idpTokenHeader: string | undefined;
  /** The user's IdP token must be available before the request goes on (`idpToken.header` or `.env`). */
  readonly needsIdpToken: boolean;
  /** Lowercased names a client may not send upstream: identity headers and the IdP-token header. */
  readonly reservedHeaders: ReadonlySet<string>;
}

export function protectedServerFor(issuer: string, server: ServerConfig): ProtectedServer {
  const resource = resourceFor(issuer, server);
  const identity = identityHeaderPlan(server.identityHeaders);
  const idpTokenHeader = server.idpToken?.header?.toLowerCase();
  const reservedHeaders = new Set(identity.names);
  if (idpTokenHeader !== undefined) reservedHeaders.add(idpTokenHeader);
  return {
    name: server.name,
    resource,
    resourceMetadataUrl: protectedResourceMetadataUrlOf(resource),
    scopes: advertisedScopes(server),
    identity,
    idpTokenHeader,
    needsIdpToken: idpTokenHeader !== undefined || server.idpToken?.env !== undefined,
    reservedHeaders,
  };
}

/** The request may go on, as this user. */
export interface GuardGrant {
  readonly ok: true;
  readonly token: VerifiedToken;
  readonly user: UserRecord;
  readonly identity: EncodedIdentity;
  /** The user's current IdP access token, for servers with `idpToken`; never the gateway's own token. */
  readonly idpToken: string | undefined;
}

/** The request is refused: a Bearer challenge (400/401/403) or the IdP being unreachable (503). */
export type GuardDenial =
  | { readonly ok: false; readonly kind: 'challenge'; readonly challenge: ChallengeParams }
  | { readonly ok: false; readonly kind: 'unavailable'; readonly status: 503; readonly message: string };

export type GuardResult = GuardGrant | GuardDenial;

export interface ResourceGuardOptions {
  verifier: TokenVerifier;
  /** Looks a user up by the token's `sub`; called once per token, not per request. */
  findUser: (sub: string) => Promise<UserRecord | undefined>;
  idpTokens?: IdpTokenSource;
  logger: Logger;
  /** Decides when a cached IdP token is stale (the system clock by default). */
  clock?: Clock;
}

export interface ResourceGuard {
  /**
   * Checks a request's `Authorization` header (and query, where a token is refused) for `server`.
   * Synchronous when everything is cached; never rejects.
   */
  check(server: ProtectedServer, authorization: string | undefined, search: string): GuardResult | Promise<GuardResult>;
  /**
   * The request headers the upstream receives for a granted request, as a flat `[name, value, …]`
   * list appended to `target`: the configured identity headers and the IdP-token header.
   */
  appendUpstreamHeaders(target: string[], server: ProtectedServer, grant: GuardGrant): void;
  clear(): void;
}

export function createResourceGuard(options: ResourceGuardOptions): ResourceGuard {
  const idpTokens = options.idpTokens ? createIdpTokenCache(options.idpTokens, { clock: options.clock }) : undefined;
  return new Guard(options.verifier, options.findUser, idpTokens, options.logger);
}

/**
 * The guard's state is explicit fields rather than closure captures, so each step below is a small
 * named method. `check` is called as a method by every caller, so nothing relies on it being bound.
 */
class Guard implements ResourceGuard {
  readonly #verifier: TokenVerifier;
  readonly #findUser: (sub: string) => Promise<UserRecord | undefined>;
  readonly #idpTokens: IdpTokenCache | undefined;
  readonly #logger: Logger;
  /** In-flight user reads, so concurrent first requests with one token share a single read. */
  readonly #lookups = new WeakMap<VerifiedToken, Promise<UserRecord | undefined>>();

  constructor(verifier: TokenVerifier, findUser: (sub: string) => Promise<UserRecord | undefined>, idpTokens: IdpTokenCache | undefined, logger: Logger) {
    this.#verifier = verifier;
    this.#findUser = findUser;
    this.#idpTokens = idpTokens;
    this.#logger = logger;
  }

  check(server: ProtectedServer, authorization: string | undefined, search: string): GuardResult | Promise<GuardResult> {
    const bearer = bearerCandidate(authorization, search);
    if (typeof bearer !== 'string') return bearerDenial(server, bearer.reason);
    // Hot path: a token seen before, whose user is already known. No promise, no allocation beyond the
    // result. Every cached token passed the b64token check before it was verified, so a hit skips it.
    const cached = this.#verifier.peek(bearer, server.resource);
    if (cached?.ok) {
      const token = cached.token;
      if (token.user !== undefined && token.identity !== undefined) return this.#afterToken(server, token, token.user, token.identity);
    } else if (cached === undefined && !isB64Token(bearer)) {
      return bearerDenial(server, 'malformed');
    }
    return this.#slowPath(server, bearer).catch((error: unknown): GuardResult => {
      this.#logger.error({ err: error, server: server.name }, 'access check failed');
      return { ok: false, kind: 'unavailable', status: 503, message: 'The gateway could not check the access token; try again later' };
    });
  }

  appendUpstreamHeaders(target: string[], server: ProtectedServer, grant: GuardGrant): void {
    appendIdentityHeaders(target, server.identity, grant.identity);
    if (server.idpTokenHeader !== undefined && grant.idpToken !== undefined) target.push(server.idpTokenHeader, grant.idpToken);
  }

  clear(): void {
    this.#verifier.clear();
    this.#idpTokens?.clear();
  }

  /** A token not (yet) in the cache, or whose user has not been read: full verification, then the user. */
  async #slowPath(server: ProtectedServer, bearer: string): Promise<GuardResult> {
    const result = await this.#verifier.verify(bearer, server.resource);
    if (!result.ok) {
      if (this.#logger.isLevelEnabled('debug')) this.#logger.debug({ server: server.name, reason: result.reason }, 'access token refused');
      return denied(server, 'invalid_token', result.description);
    }
    const token = result.token;
    const user = token.user ?? (await this.#userFor(token));
    if (user === undefined || token.identity === undefined) return denied(server, 'invalid_token', 'The user of this access token no longer exists.');
    return this.#afterToken(server, token, user, token.identity);
  }

  /**
   * Reads the token's user once and keeps it, with its encoded identity headers, on the cache entry.
   * Concurrent first requests share one read; a missing user is not remembered.
   */
  #userFor(token: VerifiedToken): Promise<UserRecord | undefined> {
    let pending = this.#lookups.get(token);
    if (!pending) {
      pending = this.#findUser(token.claims.sub).then(
        (user) => {
          this.#lookups.delete(token);
          if (!user) return undefined;
          token.user = user;
          token.identity = encodeIdentity(user);
          return user;
        },
        (error: unknown) => {
          this.#lookups.delete(token);
          throw error;
        },
      );
      this.#lookups.set(token, pending);
    }
    return pending;
  }

  /** Scope and IdP-token steps, once the token and its user are known. */
  #afterToken(server: ProtectedServer, token: VerifiedToken, user: UserRecord, identity: EncodedIdentity): GuardResult | Promise<GuardResult> {
    if (!hasScopes(token, server.scopes)) return denied(server, 'insufficient_scope', 'The access token lacks a scope this MCP server requires.');
    if (!server.needsIdpToken) return { ok: true, token, user, identity, idpToken: undefined };
    const idpTokens = this.#idpTokens;
    if (!idpTokens) {
      // A configuration the app wires wrongly; fail closed rather than proxy without the token.
      this.#logger.error({ server: server.name }, "server needs the user's IdP token but no IdP token source is configured");
      return { ok: false, kind: 'unavailable', status: 503, message: 'The identity provider token is unavailable' };
    }
    const cached = idpTokens.peek(user.id);
    if (cached !== undefined) return { ok: true, token, user, identity, idpToken: cached };
    return idpTokens.get(user.id).then(
      (idpToken): GuardResult => ({ ok: true, token, user, identity, idpToken }),
      (error: unknown): GuardResult => this.#idpTokenFailure(idpTokens, server, user, error),
    );
  }

  #idpTokenFailure(idpTokens: IdpTokenCache, server: ProtectedServer, user: UserRecord, error: unknown): GuardResult {
    idpTokens.forget(user.id);
    if (error instanceof IdpReauthenticationRequired) {
      this.#logger.info(
        { event: 'idp_token.reauthentication_required', userId: user.id, server: server.name, reason: error.message },
        'user must sign in again at the IdP',
      );
      // RFC 6750 §3.1 invalid_token: the client's token is fine cryptographically, but the
      // session behind it is gone; a 401 sends MCP clients back to authorization.
      return denied(server, 'invalid_token', 'Your session at the identity provider has ended; sign in again.');
    }
    this.#logger.warn({ event: 'idp_token.unavailable', userId: user.id, server: server.name, err: error }, 'IdP token could not be obtained');
    return { ok: false, kind: 'unavailable', status: 503, message: 'The identity provider is temporarily unavailable; try again later' };
  }
}

/** A plain loop rather than `every`, so the hot path allocates no callback. */
function hasScopes(token: VerifiedToken, required: readonly string[]): boolean {
  for (const scope of required) {
    if (!token.scopes.has(scope)) return false;
  }
  return true;
}

/** RFC 6750 §3.1: a token in the query is a bad request; no bearer token at all gets a bare challenge. */
function bearerDenial(server: ProtectedServer, reason: 'missing' | 'malformed' | 'in_query'): GuardDenial {
  if (reason === 'in_query') return denied(server, 'invalid_request', 'Access tokens are accepted only in the Authorization header.');
  if (reason === 'malformed') return denied(server, 'invalid_token', 'The Authorization header is malformed.');
  return denied(server);
}

function denied(server: ProtectedServer, error?: ChallengeParams['error'], errorDescription?: string): GuardDenial {
  return { ok: false, kind: 'challenge', challenge: { resourceMetadataUrl: server.resourceMetadataUrl, scopes: server.scopes, error, errorDescription } };
}
