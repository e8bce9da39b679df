/**
 * Access-token verification at the gateway, with real ES256 tokens signed by jose, plus the pure
 * helpers the check depends on (canonical resources, bearer extraction, challenges).
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import type { CryptoKey, JWK } from 'jose';
import { base64url, exportJWK, generateKeyPair, SignJWT } from 'jose';
import { canonicalizeResource, protectedResourceMetadataUrl, resourceUriFor } from '../../../src/core/resource-uri.ts';
import { createLogger } from '../../../src/observability/logger.ts';
import { bearerChallenge } from '../../../src/resource-server/challenge.ts';
import { createResourceGuard, type ProtectedServer } from '../../../src/resource-server/guard.ts';
import { encodeHeaderValue, identityHeaderPlan } from '../../../src/resource-server/identity-headers.ts';
import { createTokenVerifier, extractBearerToken } from '../../../src/resource-server/token-verifier.ts';
import { TestClock } from '../../support/clock.ts';

const ISSUER = 'https://gw.example.com';
const RESOURCE = 'https://gw.example.com/mcp';

let privateKey: CryptoKey;
let publicJwk: JWK;

before(async () => {
  const pair = await generateKeyPair('ES256', { extractable: true });
  privateKey = pair.privateKey;
  publicJwk = { ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
});

interface TokenOverrides {
  aud?: string | string[];
  iss?: string;
  typ?: string;
  expiresIn?: number;
  notBefore?: number;
  claims?: Record<string, unknown>;
  key?: CryptoKey;
  kid?: string;
}

async function sign(overrides: TokenOverrides = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const jwt = new SignJWT({ client_id: 'client-1', scope: 'mcp:tools', ...overrides.claims })
    .setProtectedHeader({ alg: 'ES256', typ: overrides.typ ?? 'at+jwt', kid: overrides.kid ?? 'k1' })
    .setIssuer(overrides.iss ?? ISSUER)
    .setAudience(overrides.aud ?? RESOURCE)
    .setSubject('local:alice')
    .setIssuedAt(now)
    .setJti(crypto.randomUUID())
    .setExpirationTime(now + (overrides.expiresIn ?? 300));
  if (overrides.notBefore !== undefined) jwt.setNotBefore(now + overrides.notBefore);
  return jwt.sign(overrides.key ?? privateKey);
}

function verifierWithCounter(keys: () => JWK[] = () => [publicJwk]) {
  const counter = { calls: 0 };
  const verifier = createTokenVerifier({
    issuer: ISSUER,
    publicKeys: () => {
      counter.calls++;
      return keys();
    },
  });
  return { verifier, counter };
}

describe('token verifier', () => {
  it('accepts a valid token and returns its claims', async () => {
    const { verifier } = verifierWithCounter();
    const result = await verifier.verify(await sign(), RESOURCE);
    assert.equal(result.ok, true);
    if (!result.ok) return;
    assert.equal(result.token.claims.sub, 'local:alice');
    assert.equal(result.token.claims.client_id, 'client-1');
    assert.deepEqual([...result.token.scopes], ['mcp:tools']);
  });

  it('accepts the media-type form application/at+jwt (RFC 9068 §2.1)', async () => {
    const { verifier } = verifierWithCounter();
    assert.equal((await verifier.verify(await sign({ typ: 'application/at+jwt' }), RESOURCE)).ok, true);
  });

  it('refuses a token for another resource', async () => {
    const { verifier } = verifierWithCounter();
    const result = await verifier.verify(await sign({ aud: 'https://gw.example.com/other' }), RESOURCE);
    assert.deepEqual(result.ok ? 'ok' : result.reason, 'wrong_audience');
    // A non-canonical spelling of the right resource is not the right resource: the AS canonicalises.
    const slash = await verifier.verify(await sign({ aud: 'https://gw.example.com/mcp/' }), RESOURCE);
    assert.deepEqual(slash.ok ? 'ok' : slash.reason, 'wrong_audience');
  });

  it('checks the audience on cache hits too', async () => {
    const { verifier } = verifierWithCounter();
    const token = await sign();
    assert.equal((await verifier.verify(token, RESOURCE)).ok, true);
    const other = verifier.peek(token, 'https://gw.example.com/other');
    assert.ok(other && !other.ok && other.reason === 'wrong_audience');
  });

  it('refuses a token from another issuer', async () => {
    const { verifier } = verifierWithCounter();
    const result = await verifier.verify(await sign({ iss: 'https://evil.example.com' }), RESOURCE);
    assert.deepEqual(result.ok ? 'ok' : result.reason, 'invalid');
  });

  it('refuses an expired token', async () => {
    const { verifier } = verifierWithCounter();
    const result = await verifier.verify(await sign({ expiresIn: -60 }), RESOURCE);
    assert.deepEqual(result.ok ? 'ok' : result.reason, 'expired');
  });

  it('tolerates small clock skew but not a token that is not yet valid', async () => {
    const { verifier } = verifierWithCounter();
    assert.equal((await verifier.verify(await sign({ expiresIn: -2 }), RESOURCE)).ok, true);
    const early = await verifier.verify(await sign({ notBefore: 120 }), RESOURCE);
    assert.deepEqual(early.ok ? 'ok' : early.reason, 'invalid');
  });

  it('refuses a token whose typ is not at+jwt (an ID token, for example)', async () => {
    const { verifier } = verifierWithCounter();
    for (const typ of ['JWT', 'id_token+jwt']) {
      const result = await verifier.verify(await sign({ typ }), RESOURCE);
      assert.deepEqual(result.ok ? 'ok' : result.reason, 'invalid', typ);
    }
  });

  it('refuses alg "none" and HS256, whatever the payload says', async () => {
    const { verifier } = verifierWithCounter();
    const now = Math.floor(Date.now() / 1000);
    const payload = { iss: ISSUER, aud: RESOURCE, sub: 'local:alice', client_id: 'c', exp: now + 300, iat: now };
    const unsecured = `${base64url.encode(JSON.stringify({ alg: 'none', typ: 'at+jwt' }))}.${base64url.encode(JSON.stringify(payload))}.`;
    const none = await verifier.verify(unsecured, RESOURCE);
    assert.deepEqual(none.ok ? 'ok' : none.reason, 'invalid');

    const hs256 = await new SignJWT(payload)
      .setProtectedHeader({ alg: 'HS256', typ: 'at+jwt', kid: 'k1' })
      .sign(new TextEncoder().encode('a-shared-secret-of-32-bytes-long!'));
    const hs = await verifier.verify(hs256, RESOURCE);
    assert.deepEqual(hs.ok ? 'ok' : hs.reason, 'invalid');
  });

  it('refuses a token signed by a key it does not know', async () => {
    const { verifier } = verifierWithCounter();
    const stranger = await generateKeyPair('ES256');
    const result = await verifier.verify(await sign({ key: stranger.privateKey }), RESOURCE);
    assert.deepEqual(result.ok ? 'ok' : result.reason, 'invalid');
  });

  it('requires sub and client_id', async () => {
    const { verifier } = verifierWithCounter();
    const now = Math.floor(Date.now() / 1000);
    const noClient = await new SignJWT({ scope: 'x' })
      .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: 'k1' })
      .setIssuer(ISSUER)
      .setAudience(RESOURCE)
      .setSubject('local:alice')
      .setExpirationTime(now + 60)
      .sign(privateKey);
    const result = await verifier.verify(noClient, RESOURCE);
    assert.deepEqual(result.ok ? 'ok' : result.reason, 'invalid');
  });

  it('refuses garbage without throwing', async () => {
    const { verifier, counter } = verifierWithCounter();
    for (const token of ['', 'abc', 'a.b', 'a.b.c.d', '....', 'x'.repeat(20_000)]) {
      const result = await verifier.verify(token, RESOURCE);
      assert.equal(result.ok, false);
    }
    assert.equal(counter.calls <= 1, true);
  });

  it('answers a token seen before from the cache, without a signature check', async () => {
    const { verifier, counter } = verifierWithCounter();
    const token = await sign();
    assert.equal(verifier.peek(token, RESOURCE), undefined, 'nothing cached before the first check');
    assert.equal((await verifier.verify(token, RESOURCE)).ok, true);
    assert.equal(counter.calls, 1);
    for (let i = 0; i < 100; i++) {
      const hit = verifier.peek(token, RESOURCE);
      assert.ok(hit?.ok);
      assert.equal((await verifier.verify(token, RESOURCE)).ok, true);
    }
    // The key function is only consulted for a signature check; 200 checks later it is still 1.
    assert.equal(counter.calls, 1);
    assert.equal(verifier.cacheSize, 1);
  });

  it('stops answering from the cache once the token has expired', async () => {
    const clock = new TestClock();
    const counter = { calls: 0 };
    const verifier = createTokenVerifier({
      issuer: ISSUER,
      publicKeys: () => {
        counter.calls++;
        return [publicJwk];
      },
      clock,
      clockToleranceSeconds: 0,
    });
    const token = await sign({ expiresIn: 10 });
    assert.equal((await verifier.verify(token, RESOURCE)).ok, true);
    clock.advance(11_000);
    assert.equal(verifier.peek(token, RESOURCE), undefined);
    const result = await verifier.verify(token, RESOURCE);
    assert.deepEqual(result.ok ? 'ok' : result.reason, 'expired');
  });

  it('keeps the cache bounded (least recently used goes first)', async () => {
    const verifier = createTokenVerifier({ issuer: ISSUER, publicKeys: () => [publicJwk], cacheSize: 3 });
    const tokens = await Promise.all([sign(), sign(), sign(), sign()]);
    for (const token of tokens.slice(0, 3)) assert.equal((await verifier.verify(token, RESOURCE)).ok, true);
    assert.ok(verifier.peek(tokens[0]!, RESOURCE)); // touch the oldest: now the second is least recent
    assert.equal((await verifier.verify(tokens[3]!, RESOURCE)).ok, true);
    assert.equal(verifier.cacheSize, 3);
    assert.ok(verifier.peek(tokens[0]!, RESOURCE));
    assert.equal(verifier.peek(tokens[1]!, RESOURCE), undefined);
  });

  it('answers a token that only ends like a cached one as a miss', async () => {
    const verifier = createTokenVerifier({ issuer: ISSUER, publicKeys: () => [publicJwk] });
    const token = await sign();
    assert.equal((await verifier.verify(token, RESOURCE)).ok, true);
    const [header, payload, signature] = token.split('.') as [string, string, string];
    const forged = `${header}.${base64url.encode(JSON.stringify({ sub: 'someone-else', aud: RESOURCE }))}.${signature}`;
    assert.equal(verifier.peek(forged, RESOURCE), undefined, 'same signature, other payload: not a hit');
    assert.equal((await verifier.verify(forged, RESOURCE)).ok, false);
    assert.equal(verifier.peek(token, RESOURCE)?.ok, true, 'the verified token is still cached');
    void payload;
  });

  it('never evicts a token in steady use, however many others pass through', async () => {
    const verifier = createTokenVerifier({ issuer: ISSUER, publicKeys: () => [publicJwk], cacheSize: 3 });
    const busy = await sign();
    assert.equal((await verifier.verify(busy, RESOURCE)).ok, true);
    for (let i = 0; i < 6; i++) {
      assert.equal((await verifier.verify(await sign(), RESOURCE)).ok, true);
      assert.ok(verifier.peek(busy, RESOURCE), `still cached after ${i + 1} other tokens`);
    }
    assert.equal(verifier.cacheSize, 3);
  });

  it('rebuilds its key set when the keys change, and forgets tokens of a withdrawn key', async () => {
    const second = await generateKeyPair('ES256', { extractable: true });
    const secondJwk: JWK = { ...(await exportJWK(second.publicKey)), kid: 'k2', alg: 'ES256' };
    let keys: JWK[] = [publicJwk];
    const verifier = createTokenVerifier({ issuer: ISSUER, publicKeys: () => keys });
    const oldToken = await sign();
    assert.equal((await verifier.verify(oldToken, RESOURCE)).ok, true);
    const newToken = await sign({ key: second.privateKey, kid: 'k2' });
    assert.equal((await verifier.verify(newToken, RESOURCE)).ok, false, 'k2 unknown yet');
    keys = [secondJwk];
    assert.equal((await verifier.verify(newToken, RESOURCE)).ok, true, 'k2 picked up');
    assert.equal(verifier.peek(oldToken, RESOURCE), undefined, 'k1 tokens dropped from the cache');
    assert.equal((await verifier.verify(oldToken, RESOURCE)).ok, false);
  });
});

describe('token verifier and revoked grants', () => {
  it('refuses a token whose grant is revoked, on a cache hit too, and drops it from the cache', async () => {
    const revoked = new Set<string>();
    const verifier = createTokenVerifier({ issuer: ISSUER, publicKeys: () => [publicJwk], isRevoked: (grantId) => revoked.has(grantId) });
    const token = await sign({ claims: { grant_id: 'grant-1' } });
    const other = await sign({ claims: { grant_id: 'grant-2' } });
    assert.equal((await verifier.verify(token, RESOURCE)).ok, true);
    assert.equal((await verifier.verify(other, RESOURCE)).ok, true);
    assert.equal(verifier.peek(token, RESOURCE)?.ok, true, 'cached');
    revoked.add('grant-1');
    assert.deepEqual(verifier.peek(token, RESOURCE), { ok: false, reason: 'revoked', description: 'The access token has been revoked.' });
    assert.equal(verifier.cacheSize, 1, 'the revoked token left the cache');
    assert.equal((await verifier.verify(token, RESOURCE)).ok, false, 'and a full check refuses it as well');
    assert.equal(verifier.cacheSize, 1, 'without caching it again');
    assert.equal(verifier.peek(other, RESOURCE)?.ok, true, 'other grants are untouched');
  });

  it('refuses a grant_id that is not a string', async () => {
    const verifier = createTokenVerifier({ issuer: ISSUER, publicKeys: () => [publicJwk], isRevoked: () => false });
    assert.equal((await verifier.verify(await sign({ claims: { grant_id: 42 } }), RESOURCE)).ok, false);
  });
});

describe('bearer extraction', () => {
  it('takes the token from the Authorization header only', () => {
    assert.deepEqual(extractBearerToken('Bearer abc.def.ghi', ''), { ok: true, token: 'abc.def.ghi' });
    assert.deepEqual(extractBearerToken('bearer abc.def.ghi', ''), { ok: true, token: 'abc.def.ghi' });
    assert.deepEqual(extractBearerToken(undefined, ''), { ok: false, reason: 'missing' });
    assert.deepEqual(extractBearerToken('Basic dXNlcjpwYXNz', ''), { ok: false, reason: 'missing' });
    assert.deepEqual(extractBearerToken('Bearer a b', ''), { ok: false, reason: 'malformed' });
  });

  it('refuses a token in the query string, even next to a header', () => {
    assert.deepEqual(extractBearerToken(undefined, 'access_token=abc'), { ok: false, reason: 'in_query' });
    assert.deepEqual(extractBearerToken('Bearer abc', 'x=1&access_token=abc'), { ok: false, reason: 'in_query' });
    assert.deepEqual(extractBearerToken('Bearer abc', 'not_access_tokens=1'), { ok: true, token: 'abc' });
  });

  it('refuses a malformed token at the guard before any lookup result is used', async () => {
    const verifier = createTokenVerifier({ issuer: ISSUER, publicKeys: () => [publicJwk] });
    const guard = createResourceGuard({ verifier, findUser: async () => undefined, logger: createLogger('silent') });
    const server: ProtectedServer = {
      name: 'x',
      resource: RESOURCE,
      resourceMetadataUrl: `${RESOURCE}/.well-known`,
      scopes: [],
      identity: identityHeaderPlan({}),
      idpTokenHeader: undefined,
      needsIdpToken: false,
      reservedHeaders: new Set(),
    };
    for (const header of ['Bearer a b', 'Bearer a"b', 'Bearer =abc']) {
      const result = await guard.check(server, header, '');
      assert.equal(result.ok, false);
      assert.equal(!result.ok && result.kind === 'challenge' && result.challenge.error, 'invalid_token', header);
    }
  });
});

describe('canonical resources', () => {
  it('normalises case, default port and trailing slashes', () => {
    assert.equal(canonicalizeResource('https://gw.example.com/mcp'), 'https://gw.example.com/mcp');
    assert.equal(canonicalizeResource('https://gw.example.com/mcp/'), 'https://gw.example.com/mcp');
    assert.equal(canonicalizeResource('HTTPS://GW.Example.COM:443/mcp'), 'https://gw.example.com/mcp');
    assert.equal(canonicalizeResource('https://gw.example.com/'), 'https://gw.example.com');
    assert.equal(canonicalizeResource('http://localhost:8080/MCP'), 'http://localhost:8080/MCP', 'the path keeps its case');
  });

  it('rejects what cannot be a resource indicator (RFC 8707 §2)', () => {
    for (const bad of ['', 'mcp', '/mcp', 'https://gw.example.com/mcp#x', 'ftp://gw.example.com/mcp', 'https://user:pw@gw.example.com/mcp']) {
      assert.equal(canonicalizeResource(bad), undefined, bad);
    }
  });

  it('derives the resource and metadata URL from issuer and path', () => {
    assert.equal(resourceUriFor('https://GW.example.com', '/mcp'), 'https://gw.example.com/mcp');
    assert.equal(
      protectedResourceMetadataUrl('https://gw.example.com', { path: '/team/mcp' }),
      'https://gw.example.com/.well-known/oauth-protected-resource/team/mcp',
    );
  });
});

describe('challenges', () => {
  const url = 'https://gw.example.com/.well-known/oauth-protected-resource/mcp';
  it('names the metadata and scopes, and omits an empty scope', () => {
    assert.equal(bearerChallenge({ resourceMetadataUrl: url, scopes: ['a', 'b'] }), `Bearer resource_metadata="${url}", scope="a b"`);
    assert.equal(bearerChallenge({ resourceMetadataUrl: url, scopes: [] }), `Bearer resource_metadata="${url}"`);
  });
  it('carries RFC 6750 errors with a safe description', () => {
    assert.equal(
      bearerChallenge({ resourceMetadataUrl: url, scopes: ['a'], error: 'invalid_token', errorDescription: 'bad "token"\r\n' }),
      `Bearer error="invalid_token", error_description="bad  token   ", resource_metadata="${url}", scope="a"`,
    );
    assert.equal(
      bearerChallenge({ resourceMetadataUrl: url, scopes: ['a', 'b'], error: 'insufficient_scope' }),
      `Bearer error="insufficient_scope", scope="a b", resource_metadata="${url}"`,
    );
  });
});

describe('identity header values', () => {
  it('passes printable ASCII and encodes the rest losslessly', () => {
    assert.equal(encodeHeaderValue('alice@example.com', false), 'alice@example.com');
    assert.equal(encodeHeaderValue('Zoë', false), 'Zo%C3%AB');
    assert.equal(encodeHeaderValue('evil\r\nx-user-email: admin', false), 'evil%0D%0Ax-user-email: admin');
    assert.equal(encodeHeaderValue('100%', false), '100%25');
    assert.equal(encodeHeaderValue('a,b', true), 'a%2Cb');
    assert.equal(decodeURIComponent(encodeHeaderValue('Zoë 100% \u{1F600}', false)), 'Zoë 100% \u{1F600}');
  });
});
