/**
 * Every URL the gateway publishes or redirects to comes from `publicUrl` (and the configured server
 * hosts), never from what the request claims: `Host`, `X-Forwarded-Host`/`-Proto` (with `trustProxy`
 * on or off) or an absolute-form request target. A poisoned copy could otherwise send clients to an
 * attacker's token endpoint, and the metadata is publicly cacheable, so one poisoned answer would be
 * kept for everyone (src/authorization/public-origin.ts).
 */

import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type RunningGateway, startGateway } from '../../src/app.ts';
import { JWKS_MAX_AGE_SECONDS } from '../../src/authorization/signing-keys.ts';
import { configSchema } from '../../src/config/schema.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { freePort } from '../support/ports.ts';

interface RawResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** One request with the exact target and headers given (fetch may not set Host nor send absolute form). */
function raw(port: number, target: string, headers: Record<string, string>, method = 'GET', body?: string): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path: target, method, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** The ways a request can claim another origin. */
const SPOOFS: ReadonlyArray<{ name: string; target: (path: string) => string; headers: Record<string, string> }> = [
  { name: 'Host', target: (path) => path, headers: { host: 'evil.example' } },
  { name: 'X-Forwarded-Host/Proto', target: (path) => path, headers: { 'x-forwarded-host': 'evil.example', 'x-forwarded-proto': 'https' } },
  { name: 'Forwarded', target: (path) => path, headers: { forwarded: 'host=evil.example;proto=https' } },
  { name: 'absolute-form target', target: (path) => `http://evil.example${path}`, headers: { host: 'evil.example' } },
];

const METADATA_PATHS = [
  '/.well-known/oauth-authorization-server',
  '/.well-known/openid-configuration',
  '/.well-known/oauth-authorization-server/mcp',
  '/.well-known/openid-configuration/mcp',
  '/mcp/.well-known/openid-configuration',
];

/** Every string value in a JSON document that looks like a URL. */
function urlsIn(value: unknown): string[] {
  if (typeof value === 'string') return /^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? [value] : [];
  if (Array.isArray(value)) return value.flatMap(urlsIn);
  if (typeof value === 'object' && value !== null) return Object.values(value).flatMap(urlsIn);
  return [];
}

for (const trustProxy of [false, true]) {
  describe(`URLs come from publicUrl (trustProxy: ${trustProxy})`, () => {
    let dataDir: string;
    let gateway: RunningGateway;
    let port: number;
    let issuer: string;
    before(async () => {
      dataDir = await mkdtemp(join(tmpdir(), 'mcpgw-origin-'));
      port = await freePort();
      issuer = `http://localhost:${port}`;
      const config = configSchema.parse({ publicUrl: issuer, listen: { port }, dataDir, storage: { type: 'memory' }, trustProxy });
      gateway = await startGateway(config, { logger: createLogger('silent'), announce: () => {} });
    });
    after(async () => {
      await gateway?.close();
      await rm(dataDir, { recursive: true, force: true });
    });

    test('authorization-server metadata at every alias names only the issuer, and is publicly cacheable', async () => {
      for (const spoof of SPOOFS) {
        for (const path of METADATA_PATHS) {
          const response = await raw(port, spoof.target(path), spoof.headers);
          assert.equal(response.status, 200, `${spoof.name} ${path}: ${response.body}`);
          const urls = urlsIn(JSON.parse(response.body));
          assert.ok(urls.length >= 5, `${spoof.name} ${path}: the endpoints are listed`);
          for (const url of urls) assert.ok(url.startsWith(`${issuer}/`) || url === issuer, `${spoof.name} ${path}: ${url}`);
          assert.equal(response.headers['cache-control'], 'public, max-age=300', `${spoof.name} ${path}`);
        }
      }
    });

    test('the JWKS is cacheable for a few minutes only (key rotation)', async () => {
      const response = await raw(port, '/jwks', {});
      assert.equal(response.status, 200);
      assert.equal(response.headers['cache-control'], `public, max-age=${JWKS_MAX_AGE_SECONDS}`);
      assert.ok(JWKS_MAX_AGE_SECONDS <= 600, 'a rotated key must reach cached copies within minutes');
    });

    test('protected resource metadata and the 401 challenge name the issuer', async () => {
      for (const spoof of SPOOFS) {
        const prm = await raw(port, spoof.target('/.well-known/oauth-protected-resource/mcp'), spoof.headers);
        assert.equal(prm.status, 200, spoof.name);
        for (const url of urlsIn(JSON.parse(prm.body))) assert.ok(url.startsWith(issuer), `${spoof.name}: ${url}`);
        const challenge = await raw(port, '/mcp', { ...spoof.headers, 'content-type': 'application/json' }, 'POST', '{}');
        assert.equal(challenge.status, 401, spoof.name);
        assert.match(
          challenge.headers['www-authenticate'] ?? '',
          new RegExp(`resource_metadata="${issuer}/\\.well-known/oauth-protected-resource/mcp"`),
          spoof.name,
        );
      }
    });

    test('an authorization started with a spoofed origin returns the browser to the issuer', async () => {
      const register = await raw(
        port,
        '/register',
        { 'content-type': 'application/json' },
        'POST',
        JSON.stringify({ client_name: 'origin test', redirect_uris: ['http://127.0.0.1:9/cb'], token_endpoint_auth_method: 'none' }),
      );
      assert.equal(register.status, 201, register.body);
      const clientId = (JSON.parse(register.body) as { client_id: string }).client_id;
      for (const spoof of SPOOFS) {
        const query = new URLSearchParams({
          client_id: clientId,
          redirect_uri: 'http://127.0.0.1:9/cb',
          response_type: 'code',
          code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
          code_challenge_method: 'S256',
          state: 's',
        });
        const authorize = await raw(port, spoof.target(`/authorize?${query}`), spoof.headers);
        assert.equal(authorize.status, 303, `${spoof.name}: ${authorize.body}`);
        const location = authorize.headers.location ?? '';
        assert.ok(location.startsWith('/interaction/') || location.startsWith(`${issuer}/interaction/`), `${spoof.name}: ${location}`);
        const uid = location.split('/interaction/')[1]!;
        const interaction = await gateway.storage.get<{ returnTo: string }>('oidc:Interaction', uid);
        assert.ok(interaction?.returnTo.startsWith(`${issuer}/authorize/`), `${spoof.name}: returnTo ${interaction?.returnTo}`);
        for (const cookie of [authorize.headers['set-cookie'] ?? []].flat()) assert.doesNotMatch(cookie, /domain=/i, `${spoof.name}: ${cookie}`);
      }
    });
  });
}
