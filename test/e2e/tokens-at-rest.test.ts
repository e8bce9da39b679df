/**
 * Tokens at rest (docs/tokens.md): a copy of the gateway's SQLite file (database and -wal) holds no
 * refresh token, authorization code, access token or client secret a real login handed out, and what
 * it does hold does not redeem; a store written by an older gateway, which kept them in plaintext, is
 * migrated at start-up with every old credential still working and none left in the file.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { hashedKey } from '../../src/authorization/stored-ids.ts';
import { configSchema } from '../../src/config/schema.ts';
import { loadEncryptionKeys, SecretBox } from '../../src/storage/secret-box.ts';
import { SqliteStorage } from '../../src/storage/sqlite.ts';
import { Browser } from '../support/browser.ts';
import { TestClock } from '../support/clock.ts';
import { downgradeToLegacyLayout } from '../support/legacy-store.ts';
import { LogWatch } from '../support/log-watch.ts';
import { authorizationCode, type Registered, register, tokenRequest } from './oauth.ts';
import { type Stack, startStack } from './stack.ts';

const REDIRECT_URI = 'http://127.0.0.1:5555/callback';

/** The bytes of the store's files: the database and its write-ahead log, which holds the latest writes. */
async function storeFiles(stack: Stack): Promise<Buffer> {
  const database = join(stack.dataDir, 'gateway.db');
  const parts = [await readFile(database)];
  try {
    parts.push(await readFile(`${database}-wal`));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  return Buffer.concat(parts);
}

/** Each secret that appears in the store's files, by name. */
async function secretsInStore(stack: Stack, secrets: Record<string, string>): Promise<string[]> {
  const bytes = await storeFiles(stack);
  return Object.entries(secrets)
    .filter(([, value]) => bytes.includes(value))
    .map(([name]) => name);
}

async function registerConfidentialClient(stack: Stack): Promise<Registered & { client_secret: string }> {
  const { status, body } = await register(stack, {
    client_name: 'Confidential test client',
    redirect_uris: [REDIRECT_URI],
    token_endpoint_auth_method: 'client_secret_basic',
  });
  assert.equal(status, 201, JSON.stringify(body));
  assert.equal(typeof body.client_secret, 'string');
  return body as Registered & { client_secret: string };
}

function basicAuth(client: Registered & { client_secret: string }): Record<string, string> {
  const credentials = `${encodeURIComponent(client.client_id)}:${encodeURIComponent(client.client_secret)}`;
  return { authorization: `Basic ${Buffer.from(credentials).toString('base64')}` };
}

async function redeem(stack: Stack, client: Registered & { client_secret: string }, grant: { code: string; verifier: string }) {
  return tokenRequest(
    stack,
    { grant_type: 'authorization_code', code: grant.code, redirect_uri: REDIRECT_URI, code_verifier: grant.verifier },
    basicAuth(client),
  );
}

async function refresh(stack: Stack, client: Registered & { client_secret: string }, refreshToken: string) {
  return tokenRequest(stack, { grant_type: 'refresh_token', refresh_token: refreshToken }, basicAuth(client));
}

/** Everything a client holds after a login, a refresh and a second login it has not redeemed yet. */
async function issueCredentials(stack: Stack) {
  const client = await registerConfidentialClient(stack);
  const first = await authorizationCode(stack, new Browser({ ca: stack.ca.caPem }), client);
  const tokens = await redeem(stack, client, first);
  assert.equal(tokens.status, 200, JSON.stringify(tokens.body));
  const rotated = await refresh(stack, client, String(tokens.body.refresh_token));
  assert.equal(rotated.status, 200, JSON.stringify(rotated.body));
  const pending = await authorizationCode(stack, new Browser({ ca: stack.ca.caPem }), client);
  return {
    client,
    pending,
    secrets: {
      'client secret': client.client_secret,
      'redeemed code': first.code,
      'unredeemed code': pending.code,
      'rotated refresh token': String(tokens.body.refresh_token),
      'current refresh token': String(rotated.body.refresh_token),
      'access token': String(rotated.body.access_token),
    },
  };
}

describe('a copy of the store redeems nothing', () => {
  let stack: Stack;
  const logs = new LogWatch('debug');
  before(async () => {
    stack = await startStack({ logger: logs.logger });
  });
  after(async () => {
    await stack?.close();
  });

  test('no refresh token, code, access token or client secret of a real login is in the SQLite file or its -wal', async () => {
    const { secrets } = await issueCredentials(stack);
    assert.ok((await stack.gateway.storage.list('oidc:RefreshToken')).length >= 2, 'the refresh tokens are stored');
    assert.ok((await stack.gateway.storage.list('oidc:AuthorizationCode')).length >= 2, 'the codes are stored');
    assert.deepEqual(await secretsInStore(stack, secrets), []);
    const logged = JSON.stringify(logs.lines);
    assert.deepEqual(
      Object.entries(secrets)
        .filter(([, value]) => logged.includes(value))
        .map(([name]) => name),
      [],
      'nor in the logs',
    );
  });

  test('what the store holds under a refresh token or code does not redeem', async () => {
    const { client, pending, secrets } = await issueCredentials(stack);
    for (const { key } of await stack.gateway.storage.list('oidc:RefreshToken')) {
      const attempt = await refresh(stack, client, key);
      assert.equal(attempt.body.error, 'invalid_grant', `stored key ${key} redeemed`);
    }
    for (const { key } of await stack.gateway.storage.list('oidc:AuthorizationCode')) {
      const attempt = await redeem(stack, client, { code: key, verifier: pending.verifier });
      assert.equal(attempt.body.error, 'invalid_grant', `stored key ${key} redeemed`);
    }
    // The credentials themselves still work: the store finds them by their hash.
    const refreshed = await refresh(stack, client, secrets['current refresh token']);
    assert.equal(refreshed.status, 200, JSON.stringify(refreshed.body));
    const redeemed = await redeem(stack, client, pending);
    assert.equal(redeemed.status, 200, JSON.stringify(redeemed.body));
  });
});

describe('a store written by an older gateway', () => {
  let stack: Stack;
  const logs = new LogWatch('info');
  const clock = new TestClock();
  before(async () => {
    stack = await startStack({ logger: logs.logger, clock });
  });
  after(async () => {
    await stack?.close();
  });

  test('is migrated at start-up: old refresh tokens, codes and client secrets work, and none is left in the file', async () => {
    const { client, pending, secrets } = await issueCredentials(stack);
    await stack.gateway.close();
    const file = new SqliteStorage(join(stack.dataDir, 'gateway.db'));
    const box = new SecretBox(await loadEncryptionKeys(configSchema.parse(stack.config)));
    await downgradeToLegacyLayout(file, box, {
      tokens: [
        { model: 'AuthorizationCode', value: secrets['redeemed code'] },
        { model: 'AuthorizationCode', value: secrets['unredeemed code'] },
        { model: 'RefreshToken', value: secrets['rotated refresh token'] },
        { model: 'RefreshToken', value: secrets['current refresh token'] },
      ],
    });
    await file.close();
    const storedSecrets = { ...secrets } as Record<string, string>;
    delete storedSecrets['access token']; // a JWT, never stored
    assert.deepEqual((await secretsInStore(stack, storedSecrets)).sort(), Object.keys(storedSecrets).sort(), 'the old layout holds them in plaintext');

    await stack.restartGateway();
    const migrated = logs.lines.find((line) => line.event === 'storage.credentials_migrated');
    assert.ok(migrated, 'the migration is logged');
    assert.equal(migrated.tokens, 4);
    assert.equal(migrated.clients, 1);
    assert.equal(migrated.scrubbed, true);
    assert.deepEqual(await secretsInStore(stack, storedSecrets), [], 'no plaintext credential left in the database or its -wal');

    // The old unredeemed code, with the old client secret.
    const redeemed = await redeem(stack, client, pending);
    assert.equal(redeemed.status, 200, JSON.stringify(redeemed.body));
    // The old current refresh token rotates.
    const refreshed = await refresh(stack, client, secrets['current refresh token']);
    assert.equal(refreshed.status, 200, JSON.stringify(refreshed.body));
    const newest = String(refreshed.body.refresh_token);
    // The old rotated one is still known as used: replaying it after the reuse grace period (which
    // would replay its first refresh's answer, docs/tokens.md) revokes its grant (RFC 9700 §4.14.2),
    // which reaches the tokens through the migrated grant index.
    clock.advance((stack.config.tokens?.refreshReuseGraceSeconds ?? 30) * 1000 + 1000);
    const replay = await refresh(stack, client, secrets['rotated refresh token']);
    assert.equal(replay.body.error, 'invalid_grant', JSON.stringify(replay));
    const afterReplay = await refresh(stack, client, newest);
    assert.equal(afterReplay.body.error, 'invalid_grant', 'the grant died with the replay');
    for (const token of [secrets['current refresh token'], newest]) {
      assert.equal(await stack.gateway.storage.get('oidc:RefreshToken', hashedKey(token)), undefined, 'revocation found the row through the grant index');
    }

    // A second start finds nothing to move.
    const before = logs.lines.length;
    await stack.restartGateway();
    assert.ok(!logs.lines.slice(before).some((line) => line.event === 'storage.credentials_migrated'), 'nothing migrated twice');
  });
});
