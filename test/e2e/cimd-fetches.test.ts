/**
 * Client ID Metadata Documents are fetched once per attempt, a refused one is not fetched again for
 * a while, and fetches are rate-limited per client address and per document host
 * (src/authorization/cimd-gate.ts). The document host is a real https server counting what it
 * receives (test/support/cimd-host.ts); time moves on the gateway's test clock.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, beforeEach, describe, test } from 'node:test';
import { type RunningGateway, startGateway } from '../../src/app.ts';
import { FAILURE_CACHE_SECONDS } from '../../src/authorization/cimd-gate.ts';
import { configSchema } from '../../src/config/schema.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { type CimdHost, startCimdHost } from '../support/cimd-host.ts';
import { TestClock } from '../support/clock.ts';
import { freePort } from '../support/ports.ts';
import { createTestCa } from '../support/tls.ts';

const REDIRECT_URI = 'http://127.0.0.1:4000/callback';
const FETCH_TIMEOUT_MS = 400;
const WINDOW_MS = 60_000;

describe('client metadata document fetches', () => {
  let dataDir: string;
  let gateway: RunningGateway;
  let host: CimdHost;
  let port: number;
  const clock = new TestClock();

  before(async () => {
    const ca = await createTestCa();
    host = await startCimdHost({ tls: ca });
    dataDir = await mkdtemp(join(tmpdir(), 'mcpgw-cimd-'));
    port = await freePort();
    const config = configSchema.parse({
      publicUrl: `http://localhost:${port}`,
      listen: { port },
      dataDir,
      storage: { type: 'memory' },
      trustProxy: true,
      extraCaCertificatesFile: ca.caFile,
      clientIdMetadataDocuments: { allowPrivateAddresses: true, fetchTimeoutMs: FETCH_TIMEOUT_MS, rateLimit: { perAddress: 4, perHost: 6, windowSeconds: 60 } },
    });
    gateway = await startGateway(config, { logger: createLogger('silent'), announce: () => {}, clock });
  });
  after(async () => {
    await gateway?.close();
    await host?.close();
    await rm(dataDir, { recursive: true, force: true });
  });
  // Every test starts in a fresh rate-limit window.
  beforeEach(() => clock.advance(WINDOW_MS - (clock.now() % WINDOW_MS)));

  /** GET /authorize for `clientId` from `address` (X-Forwarded-For, trustProxy: true). */
  function authorize(clientId: string, address = '198.51.100.1'): Promise<{ status: number; headers: IncomingHttpHeaders; body: string }> {
    const query = new URLSearchParams({
      client_id: clientId,
      redirect_uri: REDIRECT_URI,
      response_type: 'code',
      code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
      code_challenge_method: 'S256',
      state: 's',
    });
    return new Promise((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port, path: `/authorize?${query}`, headers: { 'x-forwarded-for': address }, agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
      });
      req.on('error', reject);
      req.end();
    });
  }

  const refusals: Array<[string, (path: string) => string]> = [
    ['404', (path) => host.url(path)],
    ['redirect', (path) => host.respond(path, { status: 302, headers: { location: `${host.origin}/elsewhere.json` } })],
    ['too large', (path) => host.document(path, { client_name: 'x'.repeat(10_000), redirect_uris: [REDIRECT_URI] })],
    [
      'another client_id',
      (path) => host.respond(path, { status: 200, body: { client_id: 'https://elsewhere.example/c.json', client_name: 'x', redirect_uris: [REDIRECT_URI] } }),
    ],
    ['slow', (path) => host.respond(path, { delayMs: FETCH_TIMEOUT_MS * 10, body: { client_name: 'x', redirect_uris: [REDIRECT_URI] } })],
  ];
  for (const [label, serve] of refusals) {
    test(`a refused document (${label}) is fetched once per attempt, and not again for ${FAILURE_CACHE_SECONDS} s`, async () => {
      const path = `/refused-${label.replaceAll(' ', '-')}.json`;
      const clientId = serve(path);
      const first = await authorize(clientId);
      assert.equal(first.status, 400, first.body);
      assert.match(first.body, /invalid_client/);
      assert.equal(host.requestsFor(path).length, 1, 'one GET for one /authorize');

      const again = await authorize(clientId, '198.51.100.2');
      assert.equal(again.status, 400);
      assert.match(again.body, /invalid_client/);
      assert.equal(host.requestsFor(path).length, 1, 'refused a moment ago: not fetched again');

      clock.advance((FAILURE_CACHE_SECONDS + 1) * 1000);
      await authorize(clientId, '198.51.100.3');
      assert.equal(host.requestsFor(path).length, 2, 'fetched again once the refusal has expired');
    });
  }

  test('a good document is fetched once and then served from the cache', async () => {
    const clientId = host.document('/good.json', { client_name: 'Good client', redirect_uris: [REDIRECT_URI] });
    for (let i = 0; i < 3; i++) {
      const response = await authorize(clientId);
      assert.equal(response.status, 303, response.body);
    }
    assert.equal(host.requestsFor('/good.json').length, 1);
  });

  test('registration metadata cannot make the gateway fetch a URL (sector_identifier_uri is dropped)', async () => {
    const sector = host.respond('/sector.json', { status: 200, body: [REDIRECT_URI] });
    for (const [label, register] of [
      [
        'DCR',
        () => registerClient({ client_name: 'sector', redirect_uris: [REDIRECT_URI], token_endpoint_auth_method: 'none', sector_identifier_uri: sector }),
      ],
      ['CIMD', () => authorize(host.document('/with-sector.json', { client_name: 'sector', redirect_uris: [REDIRECT_URI], sector_identifier_uri: sector }))],
    ] as const) {
      const response = await register();
      assert.ok(response.status === 201 || response.status === 303, `${label}: ${response.status} ${response.body}`);
      assert.equal(host.requestsFor('/sector.json').length, 0, `${label}: the sector document was fetched`);
    }
  });

  /** POST /register with a JSON body. */
  function registerClient(body: Record<string, unknown>): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) => {
      const req = httpRequest(
        { host: '127.0.0.1', port, path: '/register', method: 'POST', headers: { 'content-type': 'application/json' }, agent: false },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
        },
      );
      req.on('error', reject);
      req.end(JSON.stringify(body));
    });
  }

  test('fetches are rate-limited per client address and per document host', async () => {
    const before = host.requests.length;
    // perAddress: 4 fetches from one address per window; the fifth is refused without a fetch.
    for (let i = 0; i < 4; i++) assert.equal((await authorize(host.url(`/flood-a-${i}.json`), '203.0.113.9')).status, 400);
    const limited = await authorize(host.url('/flood-a-4.json'), '203.0.113.9');
    assert.equal(limited.status, 429, limited.body);
    assert.match(limited.body, /temporarily_unavailable/);
    assert.ok(Number(limited.headers['retry-after']) > 0, 'says when to try again');
    assert.equal(host.requests.length - before, 4, 'the refused attempt fetched nothing');

    // perHost: 6 per window whoever asks: two more from other addresses, then the host is closed.
    for (let i = 0; i < 2; i++) assert.equal((await authorize(host.url(`/flood-b-${i}.json`), `203.0.113.${20 + i}`)).status, 400);
    const hostLimited = await authorize(host.url('/flood-b-2.json'), '203.0.113.30');
    assert.equal(hostLimited.status, 429, hostLimited.body);
    assert.equal(host.requests.length - before, 6);

    clock.advance(WINDOW_MS);
    assert.equal((await authorize(host.url('/flood-c.json'), '203.0.113.9')).status, 400, 'a new window allows fetches again');
    assert.equal(host.requests.length - before, 7);
  });
});
