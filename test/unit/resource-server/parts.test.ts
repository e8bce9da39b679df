/**
 * The small parts of the gateway's resource-server side on their own: the HTTP+SSE endpoint rewriter,
 * the per-user IdP token cache, and the configuration rules for servers.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { configSchema } from '../../../src/config/schema.ts';
import { ErrorCode, hasErrorCode } from '../../../src/core/errors.ts';
import type { IdpAccessToken, IdpTokenSource } from '../../../src/idp/idp-tokens.ts';
import { IdpReauthenticationRequired } from '../../../src/idp/idp-tokens.ts';
import { createLogger } from '../../../src/observability/logger.ts';
import { SseEndpointRewriter } from '../../../src/proxy/sse-endpoint.ts';
import { createIdpTokenCache } from '../../../src/resource-server/idp-token-cache.ts';
import { createResourceServer } from '../../../src/resource-server/index.ts';
import { TestClock } from '../../support/clock.ts';

describe('SSE endpoint rewriting', () => {
  const rewrite = (endpoint: string): string | undefined => (endpoint.startsWith('/messages') ? `/legacy${endpoint}` : undefined);

  it('rewrites the endpoint event even when it arrives split across chunks, then passes bytes through', () => {
    const rewriter = new SseEndpointRewriter(rewrite);
    const stream = ': comment\r\n\r\nevent: endpoint\r\ndata: /messages?sessionId=abc\r\n\r\nevent: message\ndata: {"x":1}\n\n';
    let out = '';
    for (let i = 0; i < stream.length; i += 7) out += rewriter.push(Buffer.from(stream.slice(i, i + 7))).toString();
    assert.equal(out, ': comment\r\n\r\nevent: endpoint\ndata: /legacy/messages?sessionId=abc\n\nevent: message\ndata: {"x":1}\n\n');
    assert.equal(rewriter.done, true);
    const later = Buffer.from('data: untouched\n\n');
    assert.equal(rewriter.push(later), later, 'after the endpoint, chunks are passed on as they are');
  });

  it('refuses an endpoint outside the route and a stream that never announces one', () => {
    const refused = (error: unknown): boolean => hasErrorCode(error, ErrorCode.PROXY_SSE_ENDPOINT_INVALID);
    assert.throws(() => new SseEndpointRewriter(rewrite).push(Buffer.from('event: endpoint\ndata: http://elsewhere.example/x\n\n')), refused);
    const rewriter = new SseEndpointRewriter(rewrite);
    assert.throws(() => {
      for (let i = 0; i < 100; i++) rewriter.push(Buffer.alloc(1024, 0x61));
    }, refused);
  });
});

describe('upstream targets', () => {
  it('refuses a built-in server without a running target, with its code', () => {
    const config = configSchema.parse({ publicUrl: 'https://gw.example', servers: [{ name: 'demo', path: '/demo', upstream: { builtin: 'demo' } }] });
    assert.throws(
      () =>
        createResourceServer({
          issuer: 'https://gw.example',
          servers: config.servers ?? [],
          publicKeys: () => [],
          findUser: async () => undefined,
          logger: createLogger('silent'),
        }),
      (error: unknown) => hasErrorCode(error, ErrorCode.PROXY_UPSTREAM_UNDEFINED),
    );
  });
});

describe('IdP token cache', () => {
  /** A token source over a plain map (the real one reads storage; these tests count its calls). */
  function source(tokens: Map<string, IdpAccessToken | Error>): IdpTokenSource & { calls: number } {
    const counter = {
      calls: 0,
      async accessTokenFor(userId: string): Promise<IdpAccessToken> {
        counter.calls++;
        const entry = tokens.get(userId);
        if (entry instanceof Error) throw entry;
        if (!entry) throw new IdpReauthenticationRequired(userId, 'none');
        return entry;
      },
    };
    return counter;
  }

  it('answers from memory while the token is fresh, per user, and asks again near expiry', async () => {
    const clock = new TestClock(1_000_000_000_000);
    const tokens = new Map<string, IdpAccessToken | Error>([
      ['u:a', { accessToken: 'token-a', expiresAt: clock.now() / 1000 + 600 }],
      ['u:b', { accessToken: 'token-b', expiresAt: clock.now() / 1000 + 600 }],
    ]);
    const counted = source(tokens);
    const cache = createIdpTokenCache(counted, { clock });
    assert.equal(cache.peek('u:a'), undefined);
    assert.equal(await cache.get('u:a'), 'token-a');
    assert.equal(cache.peek('u:a'), 'token-a');
    assert.equal(await cache.get('u:a'), 'token-a');
    assert.equal(await cache.get('u:b'), 'token-b');
    assert.equal(counted.calls, 2, 'one source call per user');
    clock.advance(520_000); // within 90 s of expiry
    assert.equal(cache.peek('u:a'), undefined);
    tokens.set('u:a', { accessToken: 'token-a2', expiresAt: clock.now() / 1000 + 600 });
    assert.equal(await cache.get('u:a'), 'token-a2');
    assert.equal(counted.calls, 3);
  });

  it('does not keep a token about to expire, and passes errors on', async () => {
    const clock = new TestClock(1_000_000_000_000);
    const tokens = new Map<string, IdpAccessToken | Error>([['u:a', { accessToken: 'short', expiresAt: clock.now() / 1000 + 30 }]]);
    const counted = source(tokens);
    const cache = createIdpTokenCache(counted, { clock });
    assert.equal(await cache.get('u:a'), 'short');
    assert.equal(cache.peek('u:a'), undefined);
    await assert.rejects(cache.get('u:none'), IdpReauthenticationRequired);
  });
});

describe('server configuration rules', () => {
  const base = { publicUrl: 'https://gw.example' };
  const messages = (servers: unknown[]): string[] => {
    const result = configSchema.safeParse({ ...base, servers });
    return result.success ? [] : result.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`);
  };

  it('allows one path on several hosts, and refuses a repeated host and path pair', () => {
    assert.deepEqual(
      messages([
        { name: 'a', path: '/mcp', upstream: { url: 'http://127.0.0.1:1/mcp' } },
        { name: 'b', path: '/mcp', host: 'tools.example', upstream: { url: 'http://127.0.0.1:1/mcp' } },
      ]),
      [],
    );
    const duplicate = messages([
      { name: 'a', path: '/mcp', host: 'tools.example', upstream: { url: 'http://127.0.0.1:1/mcp' } },
      { name: 'b', path: '/mcp', host: 'tools.example:443', upstream: { url: 'http://127.0.0.1:1/mcp' } },
    ]);
    assert.ok(
      duplicate.some((line) => line.includes('duplicate route: host "tools.example" with path "/mcp"')),
      duplicate.join('\n'),
    );
  });

  it('requires resource URIs to be https (http on loopback), without fragment, and unique', () => {
    const insecure = messages([{ name: 'a', path: '/a', resource: 'http://tools.example/a', upstream: { forwardAuth: true } }]);
    assert.ok(
      insecure.some((line) => line.includes('must use https')),
      insecure.join('\n'),
    );
    const fragment = messages([{ name: 'a', path: '/a', resource: 'https://tools.example/a#x', upstream: { forwardAuth: true } }]);
    assert.ok(
      fragment.some((line) => line.includes('fragment')),
      fragment.join('\n'),
    );
    assert.deepEqual(messages([{ name: 'a', path: '/a', resource: 'http://localhost:9000/a', upstream: { forwardAuth: true } }]), []);
    const clash = messages([
      { name: 'a', path: '/a', upstream: { url: 'http://127.0.0.1:1/mcp' } },
      { name: 'b', path: '/b', resource: 'https://gw.example/a', upstream: { forwardAuth: true } },
    ]);
    assert.ok(
      clash.some((line) => line.includes('already has the resource URI')),
      clash.join('\n'),
    );
  });

  it("refuses routes on the gateway's own paths", () => {
    const reserved = messages([{ name: 'a', path: '/forward-auth', upstream: { url: 'http://127.0.0.1:1/mcp' } }]);
    assert.ok(
      reserved.some((line) => line.includes('used by the gateway itself')),
      reserved.join('\n'),
    );
  });
});
