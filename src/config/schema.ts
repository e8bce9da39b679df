/**
 * The one configuration schema. Every key the gateway reads is declared here, with its default and a
 * description; the loader validates against it and `config docs` renders the reference from it.
 */
import { z } from 'zod';

const duration = z.number().int().positive();

/** A URL the gateway publishes: https everywhere, http only on loopback (local development). */
const publicUrl = z
  .string()
  .describe('External base URL of the gateway; it is the OAuth issuer, so it has no path.')
  .superRefine((value, ctx) => {
    const url = URL.parse(value);
    if (!url) {
      ctx.addIssue({ code: 'custom', message: 'must be an absolute URL such as https://mcp.example.com' });
      return;
    }
    if (url.protocol !== 'https:' && !(url.protocol === 'http:' && isLoopbackHost(url.hostname))) {
      ctx.addIssue({ code: 'custom', message: 'must use https (http is allowed only for localhost/127.0.0.1/[::1])' });
    }
    if (url.pathname !== '/' || url.search || url.hash || url.username || url.password) {
      // CLIENTS.md §1: clients probe path-inserted metadata for issuers with a path, and some never
      // find it. Issuer = origin is the only layout every client handles.
      ctx.addIssue({ code: 'custom', message: 'must be an origin only (no path, query, fragment or credentials)' });
    }
  });

export function isLoopbackHost(hostname: string): boolean {
  return hostname === 'localhost' || hostname === '[::1]' || hostname === '::1' || /^127(\.\d{1,3}){3}$/.test(hostname);
}

const localUser = z.object({
  username: z.string().min(1).regex(/^[A-Za-z0-9._@+-]+$/, 'letters, digits and . _ @ + - only'),
  passwordHash: z.string().startsWith('scrypt$', 'must be a hash produced by `mcp-oauth-gateway hash-password`'),
  email: z.email().optional(),
  name: z.string().optional(),
  groups: z.array(z.string()).default([]),
});

const localProvider = z.object({
  type: z.literal('local'),
  id: z.string().regex(/^[a-z0-9-]+$/).default('local'),
  displayName: z.string().default('Local accounts'),
  users: z.array(localUser).default([]),
  /** Failed sign-ins allowed per username and per client address within `lockoutWindow` seconds. */
  maxFailedAttempts: z.number().int().positive().default(5),
  lockoutWindow: duration.default(900),
});

const oidcProvider = z.object({
  type: z.literal('oidc'),
  id: z.string().regex(/^[a-z0-9-]+$/).default('oidc'),
  displayName: z.string().default('Single sign-on'),
  issuer: z.url(),
  clientId: z.string().min(1),
  clientSecret: z.string().min(1).optional(),
  scopes: z.array(z.string()).default(['openid', 'email', 'profile', 'offline_access']),
  /** Extra parameters sent on the upstream authorization request (for example `prompt`, `domain_hint`). */
  authorizationParams: z.record(z.string(), z.string()).default({}),
});

export const identityProviderSchema = z.discriminatedUnion('type', [localProvider, oidcProvider]);

const identityHeaders = z
  .object({
    subject: z.string().optional(),
    email: z.string().optional(),
    name: z.string().optional(),
    groups: z.string().optional(),
  })
  .default({})
  .describe('Request headers that carry the signed-in user to the MCP server (opt-in, per header).');

const serverSchema = z.object({
  name: z.string().regex(/^[a-z0-9][a-z0-9-]*$/, 'lowercase letters, digits and dashes'),
  /** Route on the gateway; the canonical resource URI is `publicUrl + path`. */
  path: z.string().regex(/^\/[A-Za-z0-9._~\/-]*[A-Za-z0-9._~-]$/, 'must start with / and not end with /'),
  upstream: z.union([
    z.object({ url: z.url() }),
    z.object({ builtin: z.literal('demo') }),
  ]),
  /** Scopes a token needs for this server; advertised in PRM and in the 401 challenge. */
  scopes: z.array(z.string().regex(/^[\x21\x23-\x5B\x5D-\x7E]+$/)).default([]),
  identityHeaders,
  /** Browser origins allowed to call this server besides the gateway's own (DNS-rebinding protection). */
  allowedOrigins: z.array(z.string()).default([]),
  /** Upstream response-header timeout in milliseconds (SSE bodies are never cut by it). */
  upstreamTimeoutMs: z.number().int().positive().default(30_000),
  maxRequestBytes: z.number().int().positive().default(4 * 1024 * 1024),
});

export const configSchema = z
  .object({
    publicUrl: publicUrl.default('http://localhost:8080'),
    listen: z
      .object({ host: z.string().default('127.0.0.1'), port: z.number().int().min(0).max(65535).default(8080) })
      .default({ host: '127.0.0.1', port: 8080 }),
    /** Trust X-Forwarded-* from a TLS-terminating proxy in front of the gateway. */
    trustProxy: z.boolean().default(false),
    dataDir: z.string().default('./data'),
    storage: z
      .discriminatedUnion('type', [
        z.object({ type: z.literal('sqlite'), path: z.string().optional() }),
        z.object({ type: z.literal('memory') }),
      ])
      .default({ type: 'sqlite' }),
    secrets: z
      .object({
        /**
         * Base64 32-byte keys for AES-256-GCM of secrets at rest. The first encrypts; all decrypt, so a
         * new key can be put first and the old one kept until everything is re-encrypted.
         * Empty: a key is generated once into `<dataDir>/encryption.key`.
         */
        encryptionKeys: z.array(z.string()).default([]),
      })
      .default({ encryptionKeys: [] }),
    tokens: z
      .object({
        accessTokenTtl: duration.default(300),
        refreshTokenTtl: duration.default(30 * 86400),
        authorizationCodeTtl: duration.default(60),
      })
      .default({ accessTokenTtl: 300, refreshTokenTtl: 30 * 86400, authorizationCodeTtl: 60 }),
    registration: z
      .object({
        enabled: z.boolean().default(true),
        /** A registered client that never completes a login is forgotten after this many seconds. */
        unusedClientTtl: duration.default(86400),
        /** A client that has logged in is forgotten after this long without issuing a token. */
        idleClientTtl: duration.default(90 * 86400),
      })
      .default({ enabled: true, unusedClientTtl: 86400, idleClientTtl: 90 * 86400 }),
    clientIdMetadataDocuments: z
      .object({
        enabled: z.boolean().default(true),
        /** Host names (exact, or `*.example.com`) allowed to serve documents; empty allows any public host. */
        allowHosts: z.array(z.string()).default([]),
        denyHosts: z.array(z.string()).default([]),
        /** Allow documents on loopback/private addresses. Off in production: it opens SSRF. */
        allowPrivateAddresses: z.boolean().default(false),
        fetchTimeoutMs: z.number().int().positive().default(2500),
        maxBytes: z.number().int().positive().default(5120),
      })
      .default({ enabled: true, allowHosts: [], denyHosts: [], allowPrivateAddresses: false, fetchTimeoutMs: 2500, maxBytes: 5120 }),
    /** PEM file of extra CA certificates trusted for outbound HTTPS (IdP, CIMD documents). */
    extraCaCertificatesFile: z.string().optional(),
    identityProviders: z.array(identityProviderSchema).min(1).optional(),
    servers: z.array(serverSchema).min(1).optional(),
    consent: z
      .object({
        /** HMAC key for the consent cookie and CSRF tokens; generated and stored when absent. */
        cookieSecret: z.string().min(32).optional(),
      })
      .default({}),
    ui: z
      .object({ productName: z.string().default('MCP OAuth Gateway'), logoUrl: z.string().optional() })
      .default({ productName: 'MCP OAuth Gateway' }),
    log: z
      .object({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info') })
      .default({ level: 'info' }),
  })
  .superRefine((config, ctx) => {
    const names = new Set<string>();
    const paths = new Set<string>();
    config.servers?.forEach((server, index) => {
      if (names.has(server.name)) ctx.addIssue({ code: 'custom', path: ['servers', index, 'name'], message: `duplicate server name "${server.name}"` });
      if (paths.has(server.path)) ctx.addIssue({ code: 'custom', path: ['servers', index, 'path'], message: `duplicate server path "${server.path}"` });
      names.add(server.name);
      paths.add(server.path);
      if (RESERVED_PATHS.some((reserved) => server.path === reserved || server.path.startsWith(`${reserved}/`))) {
        ctx.addIssue({ code: 'custom', path: ['servers', index, 'path'], message: `"${server.path}" is used by the gateway itself` });
      }
    });
    const ids = new Set<string>();
    config.identityProviders?.forEach((provider, index) => {
      if (ids.has(provider.id)) ctx.addIssue({ code: 'custom', path: ['identityProviders', index, 'id'], message: `duplicate identity provider id "${provider.id}"` });
      ids.add(provider.id);
    });
    for (const [index, key] of config.secrets.encryptionKeys.entries()) {
      if (Buffer.from(key, 'base64').length !== 32) {
        ctx.addIssue({ code: 'custom', path: ['secrets', 'encryptionKeys', index], message: 'must be 32 bytes, base64-encoded (openssl rand -base64 32)' });
      }
    }
  });

/** Paths the gateway serves itself; an MCP server route may not shadow them. */
export const RESERVED_PATHS = ['/.well-known', '/authorize', '/token', '/register', '/revoke', '/jwks', '/interaction', '/callback', '/sign-in', '/healthz', '/oidc', '/session'];

export type GatewayConfigInput = z.input<typeof configSchema>;
export type GatewayConfig = z.output<typeof configSchema>;
export type ServerConfig = z.output<typeof serverSchema>;
export type IdentityProviderConfig = z.output<typeof identityProviderSchema>;
export type LocalProviderConfig = z.output<typeof localProvider>;
export type OidcProviderConfig = z.output<typeof oidcProvider>;
export type LocalUserConfig = z.output<typeof localUser>;
