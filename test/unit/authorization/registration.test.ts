/**
 * The registration guards (registration.ts): the per-address limit counted in real storage, and the
 * normalised body, read back from the replayed request exactly as oidc-provider reads it (the full
 * registration through oidc-provider is covered end to end in discovery-registration.test.ts).
 */

import assert from 'node:assert/strict';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TestContext } from 'node:test';
import { test } from 'node:test';
import { registrableScopes } from '../../../src/authorization/provider.ts';
import { createRegistrationGuards, type RegistrationOptions } from '../../../src/authorization/registration.ts';
import { createLogger } from '../../../src/observability/logger.ts';
import { MemoryStorage } from '../../../src/storage/memory.ts';
import { TestClock } from '../../support/clock.ts';

/** A server that runs the guards, then answers with the body a provider would read from the replay. */
async function guardedServer(t: TestContext, overrides: Partial<RegistrationOptions> = {}): Promise<string> {
  const guards = createRegistrationGuards({
    storage: new MemoryStorage(),
    logger: createLogger('silent'),
    knownScopes: registrableScopes(),
    trustProxy: true,
    rateLimit: { perAddress: 2, windowSeconds: 60 },
    ...overrides,
  });
  const server = createServer(async (req, res) => {
    if (!(await guards.registrationWithinLimit(req, res))) return;
    const replay = await guards.normalisedRegistration(req, res);
    if (!replay) return;
    res.writeHead(200, { 'content-type': 'application/json' }).end(await readAll(replay));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/register`;
}

async function readAll(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks).toString('utf8');
}

function register(url: string, body: unknown, address = '203.0.113.7'): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-forwarded-for': address },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

const CURSOR = {
  client_name: 'Cursor',
  redirect_uris: ['cursor://anysphere.cursor-mcp/oauth/callback'],
  grant_types: ['authorization_code'],
  token_endpoint_auth_method: 'none',
};

test('the provider reads the normalised registration from the replayed request', async (t) => {
  const url = await guardedServer(t);
  const response = await register(url, CURSOR);
  assert.equal(response.status, 200);
  const seen = (await response.json()) as { application_type?: string; grant_types?: string[] };
  assert.equal(seen.application_type, 'native');
  assert.deepEqual(seen.grant_types, ['authorization_code', 'refresh_token']);
});

test('a body that is not JSON is an invalid_client_metadata error (RFC 7591 §3.2.2)', async (t) => {
  const url = await guardedServer(t);
  const response = await register(url, '{not json');
  assert.equal(response.status, 400);
  assert.equal(((await response.json()) as { error: string }).error, 'invalid_client_metadata');
});

test('over the per-address limit: 429 with Retry-After and a retryable OAuth error; other addresses unaffected', async (t) => {
  const url = await guardedServer(t);
  assert.equal((await register(url, CURSOR)).status, 200);
  assert.equal((await register(url, CURSOR)).status, 200);
  const refused = await register(url, CURSOR);
  assert.equal(refused.status, 429);
  assert.ok(Number(refused.headers.get('retry-after')) > 0);
  assert.equal(((await refused.json()) as { error: string }).error, 'temporarily_unavailable');
  assert.equal((await register(url, CURSOR, '198.51.100.9')).status, 200);
});

test('a new window, by the injected clock, admits the address again; a limit of 0 turns the check off', async (t) => {
  const clock = new TestClock(Date.UTC(2026, 0, 1));
  const url = await guardedServer(t, { rateLimit: { perAddress: 1, windowSeconds: 60 }, clock });
  assert.equal((await register(url, CURSOR)).status, 200);
  assert.equal((await register(url, CURSOR)).status, 429);
  clock.advance(61_000);
  assert.equal((await register(url, CURSOR)).status, 200);

  const unlimited = await guardedServer(t, { rateLimit: { perAddress: 0, windowSeconds: 60 } });
  for (let index = 0; index < 5; index++) assert.equal((await register(unlimited, CURSOR)).status, 200);
});
