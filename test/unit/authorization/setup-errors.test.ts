/**
 * Set-up and fetch failures of the authorization server carry stable codes (src/core/errors.ts), so
 * callers and operators can branch on them whatever the message says.
 */

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { createCimdFetch } from '../../../src/authorization/cimd.ts';
import { createProvider } from '../../../src/authorization/provider.ts';
import { ErrorCode, hasErrorCode } from '../../../src/core/errors.ts';
import { createLogger } from '../../../src/observability/logger.ts';
import { MemoryStorage } from '../../../src/storage/memory.ts';
import { SecretBox } from '../../../src/storage/secret-box.ts';

const logger = createLogger('silent');

test('an authorization server without any MCP server refuses to start', () => {
  assert.throws(
    () =>
      createProvider({
        issuer: 'https://gw.example',
        resources: [],
        canonicalizeResource: (value) => value,
        storage: new MemoryStorage(),
        secretBox: new SecretBox([randomBytes(32)]),
        signingKeys: [],
        cookieKeys: ['k'.repeat(32)],
        tokens: { accessTokenTtl: 300, refreshTokenTtl: 3600, authorizationCodeTtl: 60 },
        registration: { enabled: true, unusedClientTtl: 60, idleClientTtl: 60 },
        cimd: { enabled: false, allowHosts: [], denyHosts: [], maxBytes: 1024, fetch: fetch as never },
        renderError: () => {},
        logger,
      }),
    (error: unknown) => hasErrorCode(error, ErrorCode.AUTHORIZATION_SETUP),
  );
});

test('a client metadata document over the size cap is refused with its code', async (t) => {
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ client_id: 'x', client_name: 'x'.repeat(4096), redirect_uris: ['https://x.example/cb'] }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => server.close());
  const cimd = createCimdFetch({
    allowHosts: [],
    denyHosts: [],
    allowPrivateAddresses: true,
    fetchTimeoutMs: 5000,
    maxBytes: 1024,
    knownScopes: new Set(),
    logger,
  });
  t.after(() => cimd.close());
  const { port } = server.address() as AddressInfo;
  await assert.rejects(cimd.fetch(`http://127.0.0.1:${port}/client.json`), (error: unknown) => hasErrorCode(error, ErrorCode.HTTP_BODY_TOO_LARGE));
});

test('a client metadata document on a special-use address is not fetched', async (t) => {
  const cimd = createCimdFetch({
    allowHosts: [],
    denyHosts: [],
    allowPrivateAddresses: false,
    fetchTimeoutMs: 5000,
    maxBytes: 1024,
    knownScopes: new Set(),
    logger,
  });
  t.after(() => cimd.close());
  await assert.rejects(cimd.fetch('https://127.0.0.1/client.json'), (error: unknown) => hasErrorCode(error, ErrorCode.CIMD_FETCH_REFUSED));
});
