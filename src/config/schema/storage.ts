/**
 * `storage`: where clients, grants, tokens and users are kept (docs/storage.md compares the backends).
 *
 * Redis credentials are separate keys rather than part of the URL: `password` may then be a
 * `${env:…}`/`${file:…}` reference like every other secret, the loader scrubs it from messages (its key
 * is secret-named), and the URL can be logged and shown in errors as it is.
 */
import { z } from 'zod';
import { pemFileProblem } from './pem-file.ts';
import { isLoopbackHost } from './urls.ts';

/** What is wrong with `value` as the Redis URL, with `allowPlaintext` as configured. Never echoes the URL. */
export function redisUrlProblems(value: string, allowPlaintext: boolean): string[] {
  const url = URL.parse(value);
  if (!url || (url.protocol !== 'redis:' && url.protocol !== 'rediss:')) return ['must be a redis:// or rediss:// (TLS) URL'];
  const problems: string[] = [];
  if (url.hostname === '') problems.push('must name a host');
  if (url.username || url.password) {
    problems.push('must not contain credentials: set storage.username and storage.password (a ${env:…} or ${file:…} reference) instead');
  }
  if (!/^(\/\d{0,2})?$/.test(url.pathname) || url.search || url.hash) {
    problems.push('may only carry a database number as its path (redis://host:6379/0), no query or fragment');
  }
  if (url.protocol === 'redis:' && !allowPlaintext && url.hostname !== '' && !isLoopbackHost(url.hostname)) {
    problems.push('must use rediss:// (TLS) for a Redis that is not on loopback; set storage.allowPlaintext: true only on a private network you trust');
  }
  return problems;
}

const sqliteStorageSchema = z.object({
  type: z.literal('sqlite').describe('SQLite database file (one host; several processes on it may share the file).'),
  path: z.string().optional().describe('Database file; default `<dataDir>/gateway.db`.'),
});

const memoryStorageSchema = z.object({
  type: z.literal('memory').describe('In-process memory; everything is lost on restart (tests and development).'),
});

const redisStorageSchema = z
  .object({
    type: z.literal('redis').describe('Redis, shared by every replica of the gateway (see docs/storage.md for the persistence it needs).'),
    url: z.string().describe('`redis://host:6379` or `rediss://host:6380` (TLS); an optional `/<db>` path picks the database. No credentials here.'),
    username: z.string().min(1).optional().describe('ACL user name (Redis 6+); omit for the `default` user.'),
    password: z
      .string()
      .min(1)
      .optional()
      .describe('Password (ACL user or `requirepass`); best given as `${env:REDIS_PASSWORD}` or `${file:/run/secrets/redis}`.'),
    keyPrefix: z
      .string()
      .min(1)
      .default('mcp-gateway:')
      .describe('Put before every key, so several gateways (or other applications) can share one Redis database.'),
    tls: z
      .object({
        caFile: z
          .string()
          .superRefine((path, ctx) => {
            const problem = pemFileProblem(path);
            if (problem) ctx.addIssue({ code: 'custom', message: problem });
          })
          .optional()
          .describe("PEM file of the CA that signed Redis's certificate, when it is not one the system trusts."),
      })
      .optional()
      .describe('TLS settings for `rediss://` URLs.'),
    allowPlaintext: z
      .boolean()
      .default(false)
      .describe('Allow `redis://` (no TLS) to a host other than loopback. Tokens and grants then cross the network in clear.'),
    connectTimeoutMs: z.number().int().positive().default(5000).describe('Time allowed for connecting (TCP, TLS and AUTH), in milliseconds.'),
    commandTimeoutMs: z
      .number()
      .int()
      .positive()
      .default(2000)
      .describe('Time allowed for one command; past it the request is answered 503 rather than left waiting.'),
  })
  // `when: () => true`: the URL is checked even while another key of the block is invalid, so every
  // problem is reported in one pass (as schema.ts does for its cross-key rules); the data is unvalidated.
  .superRefine(
    (storage, ctx) => {
      const { url, allowPlaintext, tls } = storage as { url?: unknown; allowPlaintext?: unknown; tls?: { caFile?: unknown } };
      if (typeof url !== 'string') return;
      for (const message of redisUrlProblems(url, allowPlaintext === true)) ctx.addIssue({ code: 'custom', path: ['url'], message });
      if (typeof tls?.caFile === 'string' && !url.startsWith('rediss:')) {
        ctx.addIssue({ code: 'custom', path: ['tls', 'caFile'], message: 'applies to rediss:// URLs only' });
      }
    },
    { when: () => true },
  );

export const storageSchema = z
  .discriminatedUnion('type', [sqliteStorageSchema, memoryStorageSchema, redisStorageSchema])
  .default({ type: 'sqlite' })
  .describe('Where clients, grants, tokens and users are kept.');

export type RedisStorageConfig = z.infer<typeof redisStorageSchema>;

/**
 * Storage shared by replicas needs the same encryption keys in every replica: a key generated into each
 * replica's `dataDir` would differ, and one replica could not open what another sealed (the signing
 * keys first of all). Sees unvalidated data, as schema.ts's cross-key checks do.
 */
export function sharedStorageKeyProblem(root: Record<string, unknown>): { path: string[]; message: string } | undefined {
  const storage = root.storage as { type?: unknown } | undefined;
  if (storage?.type !== 'redis') return undefined;
  const keys = (root.secrets as { encryptionKeys?: unknown } | undefined)?.encryptionKeys;
  if (Array.isArray(keys) && keys.length > 0) return undefined;
  return {
    path: ['secrets', 'encryptionKeys'],
    message:
      'required with Redis storage: every replica must seal and open secrets with the same keys (a key generated into each dataDir would differ); generate one with `openssl rand -base64 32`',
  };
}
