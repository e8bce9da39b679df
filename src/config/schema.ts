/**
 * The one configuration schema. Every key the gateway reads is declared here, with its default and a
 * description; the loader validates against it and `config docs` renders the reference from it.
 *
 * Descriptions are `.describe()` text rather than TSDoc because the reference is generated at runtime
 * (src/config/docs.ts) and comments do not survive type stripping. Comments that remain explain why.
 */
import { z } from 'zod';
import { issuerFromPublicUrl, hostKey as routeHostKey } from '../core/resource-uri.ts';
import { serverPathConflict } from '../http/routes.ts';
import { accessRulesSchema } from './schema/access.ts';
import { auditSchema, serverAuditSchema } from './schema/audit.ts';
import { encryptionKeyProblem } from './schema/encryption-key.ts';
import { identityProviderProblems } from './schema/identity-provider-rules.ts';
import { metricsSchema, shutdownSchema } from './schema/operations.ts';
import { pemFileProblem } from './schema/pem-file.ts';
import { githubProviderSchema, oauth2ProviderSchema } from './schema/providers-oauth2.ts';
import {
  auth0ProviderSchema,
  authentikProviderSchema,
  cognitoProviderSchema,
  entraProviderSchema,
  googleProviderSchema,
  keycloakProviderSchema,
  oidcProviderSchema,
  oktaProviderSchema,
} from './schema/providers-oidc.ts';
import { perCallTargetProblems, rateLimitsSchema } from './schema/rate-limits.ts';
import { idpTokenTargetProblems, serverResource, toolAccessProblems } from './schema/server-rules.ts';
import { stdioUpstreamSchema } from './schema/stdio.ts';
import { sharedStorageKeyProblem, storageSchema } from './schema/storage.ts';
import { stripClientHeadersSchema } from './schema/strip-client-headers.ts';
import { scopeDescriptionsSchema, toolAccessSchema } from './schema/tool-access.ts';
import { trustProxySchema } from './schema/trust-proxy.ts';
import { uiSchema } from './schema/ui.ts';
import { isLoopbackHost, requireSecureScheme } from './schema/urls.ts';

export type { GithubProviderConfig, OAuth2ProviderConfig } from './schema/providers-oauth2.ts';
export type { RedisStorageConfig } from './schema/storage.ts';

const duration = z.number().int().positive();

/** A URL the gateway publishes: https everywhere, http only on loopback (local development). */
const publicUrl = z
  .string()
  .superRefine((value, ctx) => {
    const url = URL.parse(value);
    if (!url) {
      ctx.addIssue({ code: 'custom', message: 'must be an absolute URL such as https://mcp.example.com' });
      return;
    }
    requireSecureScheme(url, ctx);
    if (url.pathname !== '/' || url.search || url.hash || url.username || url.password) {
      // docs/clients.md: clients probe path-inserted metadata for issuers with a path, and some never
      // find it. Issuer = origin is the only layout every client handles.
      ctx.addIssue({ code: 'custom', message: 'must be an origin only (no path, query, fragment or credentials)' });
    }
  })
  // The issuer is compared as an exact string (RFC 8414 §3.3), so `https://MCP.example.com:443/` and
  // `https://mcp.example.com` must become the same value; the origin is that canonical form.
  // `.overwrite` rather than `.transform` keeps the type a plain string, so the reference still shows the default.
  .overwrite((value) => URL.parse(value)?.origin ?? value)
  .describe(
    'External base URL of the gateway (https; http only on localhost). It is the OAuth issuer, so it is an origin with no path; it is normalised to the origin form.',
  );

export { isLoopbackHost } from './schema/urls.ts';

const localUser = z.object({
  username: z
    .string()
    .min(1)
    .regex(/^[A-Za-z0-9._@+-]+$/, 'letters, digits and . _ @ + - only')
    .describe("Sign-in name (letters, digits and . _ @ + -), matched case-insensitively; it is the user's subject."),
  passwordHash: z
    .string()
    .startsWith('scrypt$', 'must be a hash produced by `mcp-oauth-gateway hash-password`')
    .describe('scrypt hash of the password, produced by `mcp-oauth-gateway hash-password` (never the password itself).'),
  email: z.email().optional().describe('Email address, passed on as verified (the administrator vouches for it).'),
  name: z.string().optional().describe('Display name.'),
  groups: z.array(z.string()).default([]).describe('Group names passed on with the identity.'),
});

export const localProviderSchema = z.object({
  type: z.literal('local').describe('Built-in accounts defined in this file.'),
  id: z
    .string()
    .regex(/^[a-z0-9-]+$/)
    .default('local')
    .describe('Identifier of this provider (lowercase letters, digits, dashes); it prefixes user ids.'),
  displayName: z.string().default('Local accounts').describe('Name shown on the sign-in page.'),
  users: z.array(localUser).default([]).describe('The accounts that can sign in.'),
  maxFailedAttempts: z
    .number()
    .int()
    .positive()
    .default(5)
    .describe('Failed sign-ins allowed per username and per client address within `lockoutWindow`; further attempts are refused until the window ends.'),
  lockoutWindow: duration.default(900).describe('Length of the failed sign-in window, in seconds.'),
});

export const identityProviderSchema = z.discriminatedUnion('type', [
  localProviderSchema,
  oidcProviderSchema,
  entraProviderSchema,
  googleProviderSchema,
  oktaProviderSchema,
  keycloakProviderSchema,
  auth0ProviderSchema,
  authentikProviderSchema,
  cognitoProviderSchema,
  githubProviderSchema,
  oauth2ProviderSchema,
]);

const identityHeaders = z
  .object({
    subject: z.string().optional().describe('Header name for the user id (`<provider id>:<subject>`).'),
    email: z.string().optional().describe('Header name for the email address.'),
    name: z.string().optional().describe('Header name for the display name.'),
    groups: z.string().optional().describe('Header name for the groups.'),
  })
  .default({})
  .describe('Request headers that carry the signed-in user to the MCP server (opt-in, per header).');

export const serverSchema = z.object({
  name: z
    .string()
    .regex(/^[a-z0-9][a-z0-9-]*$/, 'lowercase letters, digits and dashes')
    .describe('Unique name of the server (lowercase letters, digits, dashes), used in logs.'),
  path: z
    .string()
    .regex(/^\/[A-Za-z0-9._~/-]*[A-Za-z0-9._~-]$/, 'must start with / and not end with /')
    // `//`, `/./` and `/../` would never match a normalised request path, or would match a different one.
    // (A path the regex already rejects is left to its message alone.)
    .refine(
      (value) =>
        !/^\/.*[^/]$/.test(value) ||
        value
          .split('/')
          .slice(1)
          .every((segment) => segment !== '' && segment !== '.' && segment !== '..'),
      'must not contain empty, "." or ".." segments',
    )
    .describe(
      'Route on the gateway, such as `/github`: the route itself and everything under it go to this server. Starts with / and does not end with /. The canonical resource URI (token audience) is `publicUrl + path` unless `host` or `resource` say otherwise.',
    ),
  host: z
    .string()
    .regex(/^[a-z0-9.-]+(:\d+)?$/, 'a lowercase host name, optionally with :port')
    .optional()
    .describe(
      "Route by Host header as well as path: only requests whose `Host` header names this host (case-insensitive, default port optional) reach this server; behind a reverse proxy, the proxy must pass the client's Host on (`X-Forwarded-Host` is not used). Its resource URI is then `<publicUrl scheme>://<host><path>`. Servers without `host` answer on any Host.",
    ),
  resource: z
    .url()
    .superRefine((value, ctx) => {
      const url = URL.parse(value);
      if (!url) return;
      // RFC 8707 §2: an absolute URI without fragment; https, except http on loopback for development.
      requireSecureScheme(url, ctx);
      if (value.includes('#')) ctx.addIssue({ code: 'custom', message: 'must not contain a fragment' });
      if (url.username || url.password) ctx.addIssue({ code: 'custom', message: 'must not contain credentials' });
    })
    .optional()
    .describe(
      'Canonical resource URI of the server (its PRM `resource` and token `aud`), when it differs from the default (`publicUrl + path`, or `<scheme>://<host><path>` with `host`); for example a forward-auth server behind another origin. Its metadata is served at the well-known path inserted into this URI, on its host.',
    ),
  upstream: z
    .union([
      z.object({
        url: z.url().describe("URL of the MCP server's endpoint."),
        transport: z
          .enum(['streamable-http', 'sse'])
          .default('streamable-http')
          .describe(
            "`streamable-http` (2025-03-26 and later) or `sse`, the older HTTP+SSE transport (2024-11-05), where `url` is the SSE endpoint: clients open the stream with `GET <path>` (or `GET <path>/<last segment of url>`), and the stream's `endpoint` event is rewritten to a URL under `<path>` that maps to the same location beside the SSE endpoint upstream (`/sse` + `/messages` become `<path>` + `<path>/messages`).",
          ),
      }),
      z.object({ stdio: stdioUpstreamSchema.describe('A stdio MCP server the gateway spawns.') }),
      z.object({ builtin: z.literal('demo').describe('A server built into the gateway (`demo` only).') }),
      z.object({
        forwardAuth: z.literal(true).describe('Traffic reaches the server through your own reverse proxy, which asks the gateway at `/forward-auth`.'),
      }),
    ])
    .describe('Where requests go: `url`, `stdio`, `builtin`, or `forwardAuth: true`.'),
  scopes: z
    .array(z.string().regex(/^[\x21\x23-\x5B\x5D-\x7E]+$/))
    .default([])
    .describe('Scopes a token needs for this server; advertised in the protected resource metadata and in the 401 challenge.'),
  scopeDescriptions: scopeDescriptionsSchema,
  toolAccess: toolAccessSchema,
  identityHeaders,
  idpToken: z
    .object({
      header: z.string().optional().describe("HTTP upstreams: request header that carries the user's current IdP access token."),
      env: z.string().optional().describe("Per-user stdio servers: environment variable that carries the user's IdP access token."),
    })
    .optional()
    .describe("Hand the user's own IdP access token to this server (opt-in). Refreshed before it expires; never the gateway's token."),
  access: accessRulesSchema.describe('Who may log in to this server, on top of the gateway-wide `access`.'),
  allowedOrigins: z.array(z.string()).default([]).describe("Browser origins allowed to call this server besides the gateway's own (DNS-rebinding protection)."),
  upstreamTimeoutMs: z.number().int().positive().default(30_000).describe('Upstream response-header timeout in milliseconds (SSE bodies are never cut by it).'),
  upstreamBodyIdleTimeoutMs: z
    .number()
    .int()
    .positive()
    .default(60_000)
    .describe(
      'Longest pause, in milliseconds, between two pieces of a JSON (non-SSE) upstream response body; after it the gateway gives up, closes the upstream connection and answers 504 with a JSON-RPC error. A JSON answer is complete before its server starts sending it, so any pause is a stalled server or network, never work in progress. SSE streams are never cut by it.',
    ),
  maxRequestBytes: z
    .number()
    .int()
    .positive()
    .default(4 * 1024 * 1024)
    .describe('Largest request body forwarded to the server, in bytes.'),
  rateLimits: rateLimitsSchema,
  audit: serverAuditSchema,
});

export const configSchema = z
  .object({
    publicUrl: publicUrl.default('http://localhost:8080'),
    listen: z
      .object({
        host: z.string().default('127.0.0.1').describe('Address to listen on; `0.0.0.0` or `::` for all interfaces.'),
        port: z.number().int().min(0).max(65535).default(8080).describe('TCP port to listen on (0 picks a free port).'),
      })
      .default({ host: '127.0.0.1', port: 8080 })
      .describe("Where the gateway's HTTP server listens."),
    workers: z
      .number()
      .int()
      .min(1)
      .max(64)
      .default(1)
      .describe(
        'Worker processes on this host (node:cluster), sharing the listener and the storage (SQLite file or Redis; not `memory`). Each worker keeps its own token cache and spawns its own stdio servers; see docs/performance.md.',
      ),
    trustProxy: trustProxySchema,
    dataDir: z.string().default('./data').describe('Directory for the database and generated keys.'),
    storage: storageSchema,
    secrets: z
      .object({
        encryptionKeys: z
          .array(
            z.string().superRefine((key, ctx) => {
              const problem = encryptionKeyProblem(key);
              if (problem) ctx.addIssue({ code: 'custom', message: problem });
            }),
          )
          .default([])
          .describe(
            'Base64 32-byte keys (`openssl rand -base64 32`) for AES-256-GCM of secrets at rest. The first encrypts; all decrypt, so a new key can be put first and the old one kept until everything is re-encrypted. Empty: a key is generated once into `<dataDir>/encryption.key`.',
          ),
      })
      .default({ encryptionKeys: [] })
      .describe('Keys for data at rest.'),
    signingKeys: z
      .object({
        rotationPeriod: z
          .number()
          .int()
          .min(0)
          .refine((seconds) => seconds === 0 || seconds >= 86400, 'must be 0 (no scheduled rotation) or at least 86400 seconds (one day)')
          .default(90 * 86400)
          .describe(
            'Seconds each token-signing key signs before the next one takes over (docs/keys.md); the next key is published an hour ahead, the old one kept until its tokens expired. 0: rotate only with `mcp-oauth-gateway keys rotate`.',
          ),
      })
      .default({ rotationPeriod: 90 * 86400 })
      .describe('The ES256 keys that sign access tokens and ID tokens (not the encryption keys of `secrets`).'),
    tokens: z
      .object({
        // Real clients refresh an access token that expires within 5 minutes of now (Gemini CLI,
        // Claude Code; docs/clients.md): a 300 s token is "expired" on arrival, so each request
        // refreshed first and two refreshes raced. 900 s leaves ten minutes between refreshes.
        accessTokenTtl: duration
          .default(900)
          .describe(
            'Lifetime of access tokens, in seconds. Keep it well above 300: Gemini CLI and Claude Code treat a token that expires within 5 minutes as expired and refresh before every request (docs/clients.md). A revoked grant, user or client stops being accepted at once, not when its tokens expire: revocations reach every replica within seconds (docs/tokens.md).',
          ),
        refreshTokenTtl: duration.default(30 * 86400).describe('Lifetime of refresh tokens, in seconds.'),
        authorizationCodeTtl: duration.default(60).describe('Lifetime of authorization codes, in seconds.'),
        // RFC 9700 §4.14.2: rotation detects a refresh token used by two parties. A presentation by
        // the same client within seconds of the rotation is the same party (parallel workers, a retry
        // after a lost response), so it gets the first response back instead of a revoked grant.
        // 30 s covers bursts and retries with backoff; a thief needs the token within those seconds
        // and the client's credentials, and reuse after them still revokes (docs/tokens.md).
        refreshReuseGraceSeconds: z
          .number()
          .int()
          .min(0)
          .max(120)
          .default(30)
          .describe(
            'Seconds after a refresh during which the same client presenting the same refresh token again (parallel refreshes, a retry after a lost response) gets the same new token pair instead of having the grant revoked as refresh-token reuse (RFC 9700 §4.14.2). Reuse after this still revokes the whole grant. 30 covers bursts and retries with backoff while keeping the window for a stolen token short; 0 revokes on any reuse. Must be shorter than accessTokenTtl, since the replayed access token is the one first issued.',
          ),
        revocationPollInterval: z
          .number()
          .min(0.1)
          .max(60)
          .default(1)
          .describe(
            'How often, in seconds, each replica reads the shared revocation stamp to learn of grants revoked elsewhere (one storage read per interval, never per request). A revoked access token stops at the replica that revoked it at once, and at the others within this interval (docs/tokens.md, "Revocation").',
          ),
      })
      .superRefine((tokens, ctx) => {
        if (tokens.refreshReuseGraceSeconds >= tokens.accessTokenTtl) {
          ctx.addIssue({
            code: 'custom',
            path: ['refreshReuseGraceSeconds'],
            message: `must be shorter than tokens.accessTokenTtl (${tokens.accessTokenTtl}): a replayed refresh response carries the access token first issued`,
          });
        }
      })
      .default({ accessTokenTtl: 900, refreshTokenTtl: 30 * 86400, authorizationCodeTtl: 60, refreshReuseGraceSeconds: 30, revocationPollInterval: 1 })
      .describe('Lifetimes of the tokens the gateway issues to MCP clients.'),
    introspection: z
      .object({
        clients: z
          .array(
            z.object({
              clientId: z
                .string()
                .regex(/^[A-Za-z0-9._-]{1,64}$/, 'letters, digits, `.`, `_` and `-`, at most 64')
                .describe('Client ID the resource server authenticates with (HTTP Basic, RFC 7662 §2.1).'),
              clientSecret: z.string().min(32).describe('Its secret, at least 32 characters; use `${env:…}` or `${file:…}`.'),
            }),
          )
          .superRefine((clients, ctx) => {
            const seen = new Set<string>();
            clients.forEach((client, index) => {
              if (seen.has(client.clientId)) ctx.addIssue({ code: 'custom', path: [index, 'clientId'], message: `duplicate client ID ${client.clientId}` });
              seen.add(client.clientId);
            });
          })
          .default([])
          .describe(
            'Resource servers allowed to call `/introspect`. Only they get answers; any other client gets `active: false`. Empty: introspection is off and not advertised.',
          ),
      })
      .default({ clients: [] })
      .describe(
        'Token introspection (RFC 7662) for resource servers that ask the gateway instead of checking its JWTs themselves (docs/tokens.md, "Introspection").',
      ),
    registration: z
      .object({
        enabled: z.boolean().default(true).describe('Allow dynamic client registration (RFC 7591).'),
        unusedClientTtl: duration.default(86400).describe('A registered client that never completes a login is forgotten after this many seconds.'),
        idleClientTtl: duration
          .default(90 * 86400)
          .describe(
            'A client that has logged in is forgotten after this many seconds without issuing a token (its expiry is extended at most once a day, or once a tenth of this, so up to that much sooner).',
          ),
        rateLimit: z
          .object({
            perAddress: z
              .number()
              .int()
              .min(0)
              .default(60)
              .describe(
                "Registrations allowed per client address (IPv6: per /64) per window; 0 turns the limit off. Claude.ai registers on every new connection, all from Anthropic's shared addresses: keep this well above your peak of simultaneous connects.",
              ),
            windowSeconds: duration.default(60).describe('Length of the rate-limit window, in seconds.'),
          })
          .default({ perAddress: 60, windowSeconds: 60 })
          .describe('Limit on registrations per client address (behind a proxy, the address `trustProxy` resolves); over it, `429` with `Retry-After`.'),
      })
      .default({ enabled: true, unusedClientTtl: 86400, idleClientTtl: 90 * 86400, rateLimit: { perAddress: 60, windowSeconds: 60 } })
      .describe('Dynamic client registration.'),
    clientIdMetadataDocuments: z
      .object({
        enabled: z.boolean().default(true).describe('Accept URL client IDs whose metadata document the gateway fetches.'),
        allowHosts: z
          .array(z.string())
          .default([])
          .describe('Host names (exact, or `*.example.com`) allowed to serve documents; empty allows any public host.'),
        denyHosts: z.array(z.string()).default([]).describe('Host names (exact, or `*.example.com`) never fetched from.'),
        allowPrivateAddresses: z.boolean().default(false).describe('Allow documents on loopback/private addresses. Off in production: it opens SSRF.'),
        fetchTimeoutMs: z.number().int().positive().default(2500).describe('Time limit for fetching a document, in milliseconds.'),
        maxBytes: z.number().int().positive().default(5120).describe('Largest document accepted, in bytes.'),
        rateLimit: z
          .object({
            perAddress: z
              .number()
              .int()
              .min(0)
              .default(20)
              .describe('Document fetches one client address (IPv6: per /64) may cause per window; 0 turns this limit off.'),
            perHost: z.number().int().min(0).default(60).describe('Fetches from one document host per window, whoever asks; 0 turns this limit off.'),
            windowSeconds: duration.default(60).describe('Length of the rate-limit window, in seconds.'),
          })
          .default({ perAddress: 20, perHost: 60, windowSeconds: 60 })
          .describe(
            'Limits on document fetches (a cached document costs none; a refused one is not fetched again for 30 seconds). Over a limit, `/authorize` answers 429 `temporarily_unavailable`.',
          ),
      })
      .default({
        enabled: true,
        allowHosts: [],
        denyHosts: [],
        allowPrivateAddresses: false,
        fetchTimeoutMs: 2500,
        maxBytes: 5120,
        rateLimit: { perAddress: 20, perHost: 60, windowSeconds: 60 },
      })
      .describe('Client ID metadata documents (URL client IDs).'),
    extraCaCertificatesFile: z
      .string()
      // Read at start-up by the gateway; reading it here too makes a wrong path a problem `config check` sees.
      .superRefine((path, ctx) => {
        const problem = pemFileProblem(path);
        if (problem) ctx.addIssue({ code: 'custom', message: problem });
      })
      .optional()
      .describe('PEM file of extra CA certificates trusted for outbound HTTPS (IdP, client metadata documents).'),
    identityProviders: z
      .array(identityProviderSchema)
      .min(1)
      .optional()
      .describe(
        'Where people sign in. Each entry has a `type`: `entra`, `google`, `github`, `okta`, `keycloak`, `auth0`, `authentik`, `cognito`, `oidc`, `oauth2` or `local`.',
      ),
    servers: z.array(serverSchema).min(1).optional().describe('The MCP servers behind the gateway.'),
    stripClientHeaders: stripClientHeadersSchema,
    access: accessRulesSchema.describe('Who may log in at all. Empty: everyone the identity providers accept.'),
    consent: z
      .object({
        cookieSecret: z
          .string()
          .min(32)
          .optional()
          .describe('HMAC key (at least 32 characters) for the consent cookie and CSRF tokens; generated and stored when absent.'),
      })
      .default({})
      .describe('The consent step.'),
    ui: uiSchema,
    audit: auditSchema,
    log: z
      .object({
        level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info').describe('Least severe level written.'),
      })
      .default({ level: 'info' })
      .describe('Logging (JSON lines on stdout).'),
    metrics: metricsSchema,
    shutdown: shutdownSchema,
  })
  // `when: () => true`: zod skips refinements once any key is invalid, which would hide duplicate or
  // reserved paths until every other error is fixed; the loader promises every problem in one pass.
  // The checks therefore see unvalidated data and guard every access.
  .superRefine((config, ctx) => crossChecks(config, ctx), { when: () => true });

type IssueSink = { addIssue(issue: { code: 'custom'; path: (string | number)[]; message: string }): void };

function records(value: unknown): Record<string, unknown>[] {
  return Array.isArray(value) ? value.map((item) => (typeof item === 'object' && item !== null ? (item as Record<string, unknown>) : {})) : [];
}

/**
 * Rules that span several keys: uniqueness, reserved routes, audiences, provider and server rules.
 * Each concern is its own check; they run per entry, in a fixed order, so issues come out in the order
 * of the config file.
 */
function crossChecks(config: unknown, ctx: IssueSink): void {
  if (typeof config !== 'object' || config === null) return;
  const root = config as Record<string, unknown>;
  checkServers(root, ctx);
  checkIdentityProviders(root, ctx);
  const keyProblem = sharedStorageKeyProblem(root);
  if (keyProblem) issue(ctx, keyProblem.path, keyProblem.message);
  checkWorkers(root, ctx);
}

/** Worker processes share state only through storage, which in-memory storage cannot be. */
function checkWorkers(root: Record<string, unknown>, ctx: IssueSink): void {
  const storage = root.storage as { type?: unknown } | undefined;
  if (typeof root.workers === 'number' && root.workers > 1 && storage?.type === 'memory') {
    issue(ctx, ['workers'], 'several workers need shared storage: `storage.type` sqlite or redis, not memory');
  }
}

type IssuePath = (string | number)[];

function issue(ctx: IssueSink, path: IssuePath, message: string): void {
  ctx.addIssue({ code: 'custom', path, message });
}

/** What the server checks remember across entries, to find collisions between servers. */
interface ServerCheckState {
  /** The scheme of `publicUrl`, which decides whether a server host may be non-loopback. */
  readonly scheme: string;
  /** Base of every resource URI; undefined while `publicUrl` itself is invalid. */
  readonly issuer: string | undefined;
  readonly names: Set<string>;
  readonly routes: Set<string>;
  readonly resources: Set<string>;
}

function checkServers(root: Record<string, unknown>, ctx: IssueSink): void {
  const publicBase = typeof root.publicUrl === 'string' ? URL.parse(root.publicUrl) : undefined;
  const state: ServerCheckState = {
    scheme: publicBase?.protocol ?? 'http:',
    issuer: publicBase ? issuerFromPublicUrl(publicBase.origin) : undefined,
    names: new Set(),
    routes: new Set(),
    resources: new Set(),
  };
  records(root.servers).forEach((server, index) => {
    const at: IssuePath = ['servers', index];
    checkServerNameUnique(server, at, state, ctx);
    // Hosts compare as the gateway routes them: lowercase, default port dropped.
    const hostKey = typeof server.host === 'string' ? (routeHostKey(server.host, state.scheme) ?? server.host) : undefined;
    if (typeof server.path === 'string') {
      checkRouteUnique(server.path, hostKey, at, state, ctx);
      checkPathNotReserved(server.path, at, ctx);
    }
    checkHostMatchesScheme(hostKey, at, state, ctx);
    checkResourceUnique(server, at, state, ctx);
    for (const problem of idpTokenTargetProblems(server)) issue(ctx, [...at, ...problem.path], problem.message);
    for (const problem of toolAccessProblems(server)) issue(ctx, [...at, ...problem.path], problem.message);
    for (const problem of perCallTargetProblems(server)) issue(ctx, [...at, ...problem.path], problem.message);
  });
}

function checkServerNameUnique(server: Record<string, unknown>, at: IssuePath, state: ServerCheckState, ctx: IssueSink): void {
  const { name } = server;
  if (typeof name !== 'string') return;
  if (state.names.has(name)) issue(ctx, [...at, 'name'], `duplicate server name "${name}"`);
  state.names.add(name);
}

/** One host and path may route to one server only. */
function checkRouteUnique(path: string, hostKey: string | undefined, at: IssuePath, state: ServerCheckState, ctx: IssueSink): void {
  const route = `${hostKey ?? ''}|${path}`;
  if (state.routes.has(route)) {
    issue(ctx, [...at, 'path'], hostKey ? `duplicate route: host "${hostKey}" with path "${path}"` : `duplicate server path "${path}"`);
  }
  state.routes.add(route);
}

function checkPathNotReserved(path: string, at: IssuePath, ctx: IssueSink): void {
  const reserved = serverPathConflict(path);
  if (reserved !== undefined) issue(ctx, [...at, 'path'], `"${path}" is used by the gateway itself (${reserved})`);
}

/** A server's own host inherits the scheme of `publicUrl`; plain http is acceptable on loopback only. */
function checkHostMatchesScheme(hostKey: string | undefined, at: IssuePath, state: ServerCheckState, ctx: IssueSink): void {
  if (hostKey === undefined || state.scheme !== 'http:') return;
  if (!isLoopbackHost(URL.parse(`http://${hostKey}`)?.hostname ?? '')) {
    issue(ctx, [...at, 'host'], 'with an http publicUrl, host must be a loopback name (the resource URI would be plain http)');
  }
}

/**
 * Two servers with one resource URI would accept each other's tokens (RFC 8707 audience). The URI
 * comes from the gateway's own canonicaliser, so two spellings it treats as one are refused here.
 */
function checkResourceUnique(server: Record<string, unknown>, at: IssuePath, state: ServerCheckState, ctx: IssueSink): void {
  const located = state.issuer === undefined ? undefined : serverResource(state.issuer, server);
  if (located === undefined) return;
  if ('problem' in located) {
    issue(ctx, [...at, ...located.problem.path], located.problem.message);
    return;
  }
  if (state.resources.has(located.resource)) issue(ctx, [...at], `another server already has the resource URI "${located.resource}"`);
  state.resources.add(located.resource);
}

function checkIdentityProviders(root: Record<string, unknown>, ctx: IssueSink): void {
  const ids = new Set<string>();
  records(root.identityProviders).forEach((provider, index) => {
    const at: IssuePath = ['identityProviders', index];
    checkProviderIdUnique(provider, at, ids, ctx);
    for (const problem of identityProviderProblems(provider)) issue(ctx, [...at, ...problem.path], problem.message);
    if (provider.type === 'local') checkUsernamesUnique(provider, at, ctx);
  });
}

function checkProviderIdUnique(provider: Record<string, unknown>, at: IssuePath, ids: Set<string>, ctx: IssueSink): void {
  if (typeof provider.id !== 'string') return;
  if (ids.has(provider.id)) issue(ctx, [...at, 'id'], `duplicate identity provider id "${provider.id}"`);
  ids.add(provider.id);
}

/** Sign-in matches usernames case-insensitively, so `Alice` and `alice` would be one login for two accounts. */
function checkUsernamesUnique(provider: Record<string, unknown>, at: IssuePath, ctx: IssueSink): void {
  const usernames = new Set<string>();
  records(provider.users).forEach((user, userIndex) => {
    if (typeof user.username !== 'string') return;
    const folded = user.username.toLowerCase();
    if (usernames.has(folded)) {
      issue(ctx, [...at, 'users', userIndex, 'username'], `duplicate username "${user.username}" (usernames are case-insensitive)`);
    }
    usernames.add(folded);
  });
}

/** Paths the gateway serves itself, from its route table; an MCP server route may not shadow them. */
export { RESERVED_PATHS } from '../http/routes.ts';

export type GatewayConfigInput = z.input<typeof configSchema>;
export type GatewayConfig = z.output<typeof configSchema>;
export type ServerConfig = z.output<typeof serverSchema>;
export type IdentityProviderConfig = z.output<typeof identityProviderSchema>;
export type LocalProviderConfig = z.output<typeof localProviderSchema>;
export type { OidcProviderConfig } from './schema/providers-oidc.ts';
export type UpstreamConfig = ServerConfig['upstream'];
export type LocalUserConfig = z.output<typeof localUser>;
export type { TrustProxySetting } from './schema/trust-proxy.ts';
