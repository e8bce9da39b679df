import assert from 'node:assert/strict';
import { test } from 'node:test';
import { configSchema } from '../../../src/config/schema.ts';

const BASE = { publicUrl: 'http://localhost:8080' };

function issues(servers: unknown[], extra: Record<string, unknown> = {}): Array<{ path: string; message: string }> {
  const result = configSchema.safeParse({ ...BASE, servers, ...extra });
  return result.success ? [] : result.error.issues.map((issue) => ({ path: issue.path.join('.'), message: issue.message }));
}

const url = { url: 'http://127.0.0.1:3001/mcp' };

test('defaults: no limits, arguments not audited, the audit stream on stderr', () => {
  const config = configSchema.parse({ ...BASE, servers: [{ name: 'a', path: '/a', upstream: url }] });
  assert.deepEqual(config.servers?.[0]?.rateLimits, []);
  assert.deepEqual(config.servers?.[0]?.audit, { includeArguments: false, redactKeys: [] });
  assert.deepEqual(config.audit, { destination: 'stderr' });
  const limited = configSchema.parse({
    ...BASE,
    servers: [{ name: 'a', path: '/a', upstream: url, rateLimits: [{ per: 'user+tool', tools: ['report'], limit: 20, windowSeconds: 86400 }] }],
  });
  assert.deepEqual(limited.servers?.[0]?.rateLimits, [{ per: 'user+tool', tools: ['report'], limit: 20, windowSeconds: 86400, maxLease: 50 }]);
});

test('bad rules are refused with their key path', () => {
  assert.deepEqual(
    issues([
      {
        name: 'a',
        path: '/a',
        upstream: url,
        rateLimits: [
          { per: 'user', limit: 0, windowSeconds: 60 },
          { per: 'team', limit: 1, windowSeconds: 60 },
          { per: 'user', limit: 1, windowSeconds: 60, tools: ['x'] },
          { per: 'client', limit: 1, windowSeconds: 30 * 86400 },
        ],
      },
    ]).map((issue) => issue.path),
    ['servers.0.rateLimits.0.limit', 'servers.0.rateLimits.1.per', 'servers.0.rateLimits.2.tools', 'servers.0.rateLimits.3.windowSeconds'],
  );
});

test('limits and argument audit where the gateway cannot see the calls are refused, not ignored', () => {
  const found = issues([
    { name: 'fa', path: '/fa', upstream: { forwardAuth: true }, rateLimits: [{ per: 'user', limit: 1, windowSeconds: 60 }] },
    {
      name: 'io',
      path: '/io',
      upstream: { stdio: { command: 'node', args: ['server.js'] } },
      rateLimits: [
        { per: 'user', limit: 1, windowSeconds: 60 },
        { per: 'user+tool', limit: 1, windowSeconds: 60 },
      ],
      audit: { includeArguments: true },
    },
  ]);
  assert.deepEqual(
    found.map((issue) => issue.path),
    ['servers.0.rateLimits', 'servers.1.rateLimits.1.per', 'servers.1.audit.includeArguments'],
  );
  assert.match(found[0]?.message ?? '', /reverse proxy/);
});
