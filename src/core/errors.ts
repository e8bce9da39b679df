/**
 * Stable error codes for everything the gateway throws that is not an OAuth error on the wire
 * (those are `OAuthError` in src/http/errors.ts) and not a JSON-RPC error (src/core/jsonrpc.ts).
 *
 * One style, as jose and oauth4webapi do: `ERR_<ROOM>_<WHAT>`, upper snake case. A code is a
 * promise: callers and tests branch on `error.code`, never on the message, so messages can be
 * reworded freely and codes never change meaning once released. Add a code to its room's block; do
 * not reuse one for a different failure.
 */

export const ErrorCode = {
  // config: the configuration file, its references and environment overrides (src/config)
  CONFIG_INVALID: 'ERR_CONFIG_INVALID',

  // core: canonical resource URIs (src/core/resource-uri.ts)
  RESOURCE_ISSUER_INVALID: 'ERR_RESOURCE_ISSUER_INVALID',
  RESOURCE_URI_INVALID: 'ERR_RESOURCE_URI_INVALID',

  // http: outbound calls (src/http/outbound.ts), request bodies and client addresses
  HTTP_INVALID_ARGUMENT: 'ERR_HTTP_INVALID_ARGUMENT',
  HTTP_BODY_TOO_LARGE: 'ERR_HTTP_BODY_TOO_LARGE',
  HTTP_TRUST_PROXY_INVALID: 'ERR_HTTP_TRUST_PROXY_INVALID',

  // storage: backends and encryption at rest (src/storage)
  STORAGE_UNKNOWN_TYPE: 'ERR_STORAGE_UNKNOWN_TYPE',
  STORAGE_CORRUPT: 'ERR_STORAGE_CORRUPT',
  STORAGE_SCHEMA_TOO_NEW: 'ERR_STORAGE_SCHEMA_TOO_NEW',
  /** The backend cannot be reached or refuses work for now (Redis down, loading, read-only): answer 503, retry later. */
  STORAGE_UNAVAILABLE: 'ERR_STORAGE_UNAVAILABLE',
  SECRET_BOX_KEY_INVALID: 'ERR_SECRET_BOX_KEY_INVALID',
  SECRET_BOX_OPEN_FAILED: 'ERR_SECRET_BOX_OPEN_FAILED',

  // authorization: the authorization-server facade (src/authorization)
  AUTHORIZATION_KEYS_NOT_CREATED: 'ERR_AUTHORIZATION_KEYS_NOT_CREATED',
  AUTHORIZATION_SETUP: 'ERR_AUTHORIZATION_SETUP',
  /** The signing-key record could not be changed: another writer held its lock throughout. */
  AUTHORIZATION_KEYS_BUSY: 'ERR_AUTHORIZATION_KEYS_BUSY',
  /** No signing keys are stored yet (the gateway never started on this storage). */
  AUTHORIZATION_KEYS_MISSING: 'ERR_AUTHORIZATION_KEYS_MISSING',
  CIMD_FETCH_REFUSED: 'ERR_CIMD_FETCH_REFUSED',

  // idp: identity providers (src/idp)
  IDP_CONFIG_INVALID: 'ERR_IDP_CONFIG_INVALID',
  IDP_LOGIN_FAILED: 'ERR_IDP_LOGIN_FAILED',
  IDP_SUBJECT_MISSING: 'ERR_IDP_SUBJECT_MISSING',
  IDP_REAUTHENTICATION_REQUIRED: 'ERR_IDP_REAUTHENTICATION_REQUIRED',

  // resource server, proxy and forward-auth (src/resource-server, src/proxy, src/forward-auth)
  PROXY_UPSTREAM_UNDEFINED: 'ERR_PROXY_UPSTREAM_UNDEFINED',
  PROXY_SSE_ENDPOINT_INVALID: 'ERR_PROXY_SSE_ENDPOINT_INVALID',
  PROXY_CLIENT_GONE: 'ERR_PROXY_CLIENT_GONE',
  /** An answer to a list request too large to hold for `toolAccess` filtering (src/proxy/list-answer-filter.ts). */
  PROXY_LIST_ANSWER_TOO_LARGE: 'ERR_PROXY_LIST_ANSWER_TOO_LARGE',
  PROXY_UPSTREAM_IDLE: 'ERR_PROXY_UPSTREAM_IDLE',
  PROXY_UPSTREAM_INVALID_RESPONSE: 'ERR_PROXY_UPSTREAM_INVALID_RESPONSE',

  // resource-server: the MCP routes' per-call step (src/resource-server/mcp-call.ts)
  /** A server has `rateLimits` but the resource server was given no storage to count in. */
  RESOURCE_RATE_LIMIT_STORAGE_MISSING: 'ERR_RESOURCE_RATE_LIMIT_STORAGE_MISSING',
  FORWARD_AUTH_SETUP: 'ERR_FORWARD_AUTH_SETUP',

  // stdio: spawned MCP servers (src/stdio)
  STDIO_START_FAILED: 'ERR_STDIO_START_FAILED',
  STDIO_PROCESS_EXITED: 'ERR_STDIO_PROCESS_EXITED',
  STDIO_RESTARTING: 'ERR_STDIO_RESTARTING',
  STDIO_SHUTTING_DOWN: 'ERR_STDIO_SHUTTING_DOWN',
  STDIO_PROCESS_LIMIT: 'ERR_STDIO_PROCESS_LIMIT',
  STDIO_IDP_TOKEN_UNAVAILABLE: 'ERR_STDIO_IDP_TOKEN_UNAVAILABLE',

  // cli (src/cli)
  CLI_USAGE: 'ERR_CLI_USAGE',
  CLI_INPUT: 'ERR_CLI_INPUT',
  /** An admin command named a client, user or grant the store does not know (exit status 3). */
  CLI_ADMIN_NOT_FOUND: 'ERR_CLI_ADMIN_NOT_FOUND',
  /** An admin command named a user by an email address several users share; it needs the user id. */
  CLI_ADMIN_AMBIGUOUS_USER: 'ERR_CLI_ADMIN_AMBIGUOUS_USER',
  /** An admin command was pointed at `storage.type: memory`, which no other process can see. */
  CLI_ADMIN_STORAGE_NOT_SHARED: 'ERR_CLI_ADMIN_STORAGE_NOT_SHARED',
} as const;

export type ErrorCodeValue = (typeof ErrorCode)[keyof typeof ErrorCode];

/**
 * The base of every error the gateway throws on purpose. `message` is for people (logs, the CLI);
 * `code` is for programs. Subclasses add structured fields (a config key path, a public OAuth code).
 */
export class GatewayError extends Error {
  readonly code: ErrorCodeValue;
  constructor(code: ErrorCodeValue, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'GatewayError';
    this.code = code;
  }
}

/** True when `error` carries the given code (whatever its class: codes are the contract). */
export function hasErrorCode(error: unknown, code: ErrorCodeValue): boolean {
  return typeof error === 'object' && error !== null && (error as { code?: unknown }).code === code;
}
