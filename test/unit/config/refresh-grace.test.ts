/**
 * `tokens.refreshReuseGraceSeconds` (docs/tokens.md): its default, its bounds, and the rule that it is
 * shorter than the access-token lifetime, since a replayed refresh response carries the access token
 * first issued.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { configSchema } from '../../../src/config/schema.ts';

const BASE = {
  publicUrl: 'https://mcp.example.com',
  identityProviders: [{ type: 'oidc', issuer: 'https://idp.example.com', clientId: 'gateway' }],
  servers: [{ name: 'github', path: '/github', upstream: { url: 'http://127.0.0.1:3000/mcp' } }],
};

function problems(tokens: Record<string, unknown>): string[] {
  const result = configSchema.safeParse({ ...BASE, tokens });
  return result.success ? [] : result.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`);
}

test('the grace period defaults to 30 seconds, with or without a tokens block', () => {
  assert.equal(configSchema.parse(BASE).tokens.refreshReuseGraceSeconds, 30);
  assert.equal(configSchema.parse({ ...BASE, tokens: { accessTokenTtl: 600 } }).tokens.refreshReuseGraceSeconds, 30);
});

test('0 turns the grace period off; negative, fractional and over two minutes are refused with the key path', () => {
  assert.deepEqual(problems({ refreshReuseGraceSeconds: 0 }), []);
  for (const value of [-1, 1.5, 121, '30']) {
    const found = problems({ refreshReuseGraceSeconds: value });
    assert.equal(found.length, 1, `${value}: ${found.join('; ')}`);
    assert.match(found[0]!, /^tokens\.refreshReuseGraceSeconds: /);
  }
});

test('a grace period as long as the access-token lifetime is refused, naming both keys', () => {
  const found = problems({ accessTokenTtl: 30 });
  assert.equal(found.length, 1, found.join('; '));
  assert.match(found[0]!, /^tokens\.refreshReuseGraceSeconds: must be shorter than tokens\.accessTokenTtl \(30\)/);
  assert.deepEqual(problems({ accessTokenTtl: 30, refreshReuseGraceSeconds: 10 }), []);
});
