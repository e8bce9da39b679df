/**
 * Credentials at rest (docs/tokens.md, "Tokens at rest"): the adapter stores oidc-provider's
 * credential models under a hash with no credential in the row or its indexes, seals client secrets
 * and the user-code index, and the start-up migration moves an older gateway's plaintext rows, once,
 * even with two replicas running it at the same moment.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Adapter, AdapterPayload } from 'oidc-provider';
import { createAdapterFactory } from '../../../src/authorization/adapter.ts';
import { migrateCredentialsAtRest } from '../../../src/authorization/at-rest-migration.ts';
import { hashedKey } from '../../../src/authorization/stored-ids.ts';
import { ErrorCode } from '../../../src/core/errors.ts';
import { MemoryStorage } from '../../../src/storage/memory.ts';
import { SecretBox } from '../../../src/storage/secret-box.ts';
import { SqliteStorage } from '../../../src/storage/sqlite.ts';
import type { Storage } from '../../../src/storage/types.ts';
import { writeLegacyToken } from '../../support/legacy-store.ts';
import { LogWatch } from '../../support/log-watch.ts';

const POLICY = { unusedClientTtl: 3600, idleClientTtl: 7200 };

/** oidc-provider's ids: 256 random bits, base64url (formats.bitsOfOpaqueRandomness). */
function credential(): string {
  return randomBytes(32).toString('base64url');
}

function inAnHour(): number {
  return Math.floor(Date.now() / 1000) + 3600;
}

function adapters(storage: Storage, box: SecretBox): (model: string) => Adapter {
  const Adapter = createAdapterFactory(storage, POLICY, box);
  return (model) => new Adapter(model);
}

let tempDir = '';
before(async () => {
  tempDir = await mkdtemp(join(tmpdir(), 'credentials-at-rest-'));
});
after(async () => {
  await rm(tempDir, { recursive: true, force: true });
});

describe('the adapter stores no credential', () => {
  test('a refresh token is stored under its hash without jti, found by the token only, and indexed by the stored key', async () => {
    const storage = new MemoryStorage();
    const adapter = adapters(storage, new SecretBox([randomBytes(32)]))('RefreshToken');
    const token = credential();
    await adapter.upsert(token, { jti: token, kind: 'RefreshToken', grantId: 'grant-1', clientId: 'c', exp: inAnHour() }, 3600);

    const rows = await storage.list<AdapterPayload>('oidc:RefreshToken');
    assert.deepEqual(
      rows.map((row) => row.key),
      [hashedKey(token)],
    );
    assert.ok(!JSON.stringify(rows).includes(token), 'the token is not in the stored row');
    assert.equal((await adapter.find(token))?.jti, token, 'oidc-provider gets jti back');
    assert.equal(await adapter.find(hashedKey(token)), undefined, 'the stored key is not a token');
    assert.deepEqual(await storage.members('oidc:grant-tokens', 'grant-1'), [`RefreshToken:${hashedKey(token)}`]);

    await adapter.consume(token);
    assert.equal(await storage.get('oidc:consumed', `RefreshToken:${hashedKey(token)}`), 1, 'the consumed marker names the stored key');
    assert.equal(typeof (await adapter.find(token))?.consumed, 'number');
    await assert.rejects(adapter.consume(token), { name: 'InvalidGrant' });

    await adapter.revokeByGrantId?.('grant-1');
    assert.equal(await adapter.find(token), undefined, 'revocation by grant reaches the hashed row');
  });

  test('a client secret is sealed at rest, bound to its client, and opened for oidc-provider', async () => {
    const storage = new MemoryStorage();
    const box = new SecretBox([randomBytes(32)]);
    const adapter = adapters(storage, box)('Client');
    const secret = credential();
    await adapter.upsert('client-a', { client_id: 'client-a', client_secret: secret, redirect_uris: ['http://127.0.0.1/cb'] });
    await adapter.upsert('client-public', { client_id: 'client-public', token_endpoint_auth_method: 'none' });

    const stored = await storage.get<AdapterPayload>('oidc:Client', 'client-a');
    assert.ok(!JSON.stringify(stored).includes(secret));
    assert.equal(stored?.client_secret, undefined);
    assert.equal((await adapter.find('client-a'))?.client_secret, secret);
    assert.deepEqual(await adapter.find('client-public'), { client_id: 'client-public', token_endpoint_auth_method: 'none' });

    // A sealed secret copied into another client's record does not open there.
    await storage.set('oidc:Client', 'client-b', { ...stored, client_id: 'client-b' });
    await assert.rejects(adapter.find('client-b'), { code: ErrorCode.SECRET_BOX_OPEN_FAILED });
  });

  test('a device code is found by its user code through a sealed index entry', async () => {
    const storage = new MemoryStorage();
    const adapter = adapters(storage, new SecretBox([randomBytes(32)]))('DeviceCode');
    const deviceCode = credential();
    await adapter.upsert(deviceCode, { jti: deviceCode, kind: 'DeviceCode', userCode: 'BCDF-GHJK', grantId: 'g', exp: inAnHour() }, 600);
    const indexed = await storage.get<string>('oidc:user-code', 'BCDF-GHJK');
    assert.ok(typeof indexed === 'string' && !indexed.includes(deviceCode), 'the user-code index does not hold the device code in plaintext');
    assert.equal((await adapter.findByUserCode?.('BCDF-GHJK'))?.jti, deviceCode);
  });
});

/** An older gateway's store: every kind of row its adapter wrote, with the credentials a client holds. */
async function writeOldStore(storage: Storage) {
  const exp = inAnHour();
  const used = credential();
  const current = credential();
  const code = credential();
  const deviceCode = credential();
  const expired = credential();
  const secret = credential();
  await writeLegacyToken(storage, 'RefreshToken', used, { kind: 'RefreshToken', grantId: 'grant-1', clientId: 'client-a', exp, consumed: exp - 3600 });
  await storage.increment('oidc:consumed', `RefreshToken:${used}`, 3600);
  await writeLegacyToken(storage, 'RefreshToken', current, { kind: 'RefreshToken', grantId: 'grant-1', clientId: 'client-a', exp });
  await writeLegacyToken(storage, 'AuthorizationCode', code, { kind: 'AuthorizationCode', grantId: 'grant-2', clientId: 'client-a', exp });
  await writeLegacyToken(storage, 'DeviceCode', deviceCode, { kind: 'DeviceCode', grantId: 'grant-3', userCode: 'WXYZ-BCDF', exp });
  // Its TTL has not run out in storage, but oidc-provider would refuse it: exp is over.
  await writeLegacyToken(storage, 'RefreshToken', expired, { kind: 'RefreshToken', grantId: 'grant-4', exp: exp - 7200 }, 3600);
  await storage.set('oidc:Grant', 'grant-1', { kind: 'Grant', jti: 'grant-1', exp }, 3600);
  await storage.set('oidc:Client', 'client-a', { client_id: 'client-a', client_secret: secret }, 3600);
  await storage.set('oidc:Client', 'client-public', { client_id: 'client-public', token_endpoint_auth_method: 'none' }, 3600);
  return { used, current, code, deviceCode, expired, secret };
}

describe('the start-up migration', () => {
  test('moves every plaintext row, keeps each credential working, leaves none in the file, and does nothing the second time', async () => {
    const path = join(tempDir, 'migrate', 'gateway.db');
    const storage = new SqliteStorage(path);
    const box = new SecretBox([randomBytes(32)]);
    const logs = new LogWatch('info');
    try {
      const old = await writeOldStore(storage);
      const report = await migrateCredentialsAtRest({ storage, secretBox: box, logger: logs.logger, idleClientTtl: POLICY.idleClientTtl });
      assert.deepEqual(report, { tokens: 4, expired: 1, clients: 1, clientsResealed: 0, clientsUnreadable: 0, indexEntries: 4, scrubbed: true });
      assert.ok(logs.some((line) => line.event === 'storage.credentials_migrated' && line.tokens === 4));

      const adapter = adapters(storage, box);
      assert.equal((await adapter('RefreshToken').find(old.current))?.jti, old.current);
      assert.equal(typeof (await adapter('RefreshToken').find(old.used))?.consumed, 'number', 'a used refresh token stays used');
      await assert.rejects(adapter('RefreshToken').consume(old.used), { name: 'InvalidGrant' });
      assert.equal((await adapter('AuthorizationCode').find(old.code))?.jti, old.code);
      assert.equal((await adapter('DeviceCode').findByUserCode?.('WXYZ-BCDF'))?.jti, old.deviceCode);
      assert.equal(await adapter('RefreshToken').find(old.expired), undefined);
      assert.equal((await adapter('Client').find('client-a'))?.client_secret, old.secret);
      assert.deepEqual(await storage.members('oidc:grant-index', 'grant-1'), [], 'the old grant index is gone');
      await adapter('RefreshToken').revokeByGrantId?.('grant-1');
      assert.equal(await adapter('RefreshToken').find(old.current), undefined, 'revocation by grant reaches moved rows');

      const bytes = Buffer.concat([await readFile(path), await readFile(`${path}-wal`).catch(() => Buffer.alloc(0))]);
      assert.deepEqual(
        Object.entries(old)
          .filter(([, value]) => bytes.includes(value))
          .map(([name]) => name),
        [],
        'no credential left in the database or its -wal',
      );

      const again = await migrateCredentialsAtRest({ storage, secretBox: box, logger: logs.logger, idleClientTtl: POLICY.idleClientTtl });
      assert.deepEqual(again, { tokens: 0, expired: 0, clients: 0, clientsResealed: 0, clientsUnreadable: 0, indexEntries: 0, scrubbed: undefined });
    } finally {
      await storage.close();
    }
  });

  test('after a key rotation, client secrets are re-sealed with the new key, so the old one can be removed', async () => {
    const storage = new MemoryStorage();
    const [oldKey, newKey, strangerKey] = [randomBytes(32), randomBytes(32), randomBytes(32)];
    const secret = credential();
    await adapters(storage, new SecretBox([oldKey]))('Client').upsert('client-a', { client_id: 'client-a', client_secret: secret });

    const logs = new LogWatch('info');
    const rotated = new SecretBox([newKey, oldKey]);
    const report = await migrateCredentialsAtRest({ storage, secretBox: rotated, logger: logs.logger, idleClientTtl: POLICY.idleClientTtl });
    assert.equal(report.clientsResealed, 1);
    assert.equal((await adapters(storage, new SecretBox([newKey]))('Client').find('client-a'))?.client_secret, secret, 'opens without the old key');

    const unreadable = await migrateCredentialsAtRest({
      storage,
      secretBox: new SecretBox([strangerKey]),
      logger: logs.logger,
      idleClientTtl: POLICY.idleClientTtl,
    });
    assert.equal(unreadable.clientsUnreadable, 1);
    assert.ok(logs.some((line) => line.event === 'storage.client_secrets_unreadable' && line.clients === 1));
    assert.equal((await adapters(storage, new SecretBox([newKey]))('Client').find('client-a'))?.client_secret, secret, 'left as it was');
  });

  test('a scrub that fails does not stop the start, and the next start scrubs again', async () => {
    const storage = new SqliteStorage(join(tempDir, 'scrub-retry', 'gateway.db'));
    const box = new SecretBox([randomBytes(32)]);
    const logs = new LogWatch('info');
    let failures = 1;
    const scrubFailingOnce = async () => {
      if (failures-- > 0) throw new Error('database or disk is full');
      return storage.scrub();
    };
    const diskFull = new Proxy(storage, {
      get: (target, name) => (name === 'scrub' ? scrubFailingOnce : Reflect.get(target, name, target).bind(target)),
    }) as Storage;
    try {
      await writeLegacyToken(storage, 'RefreshToken', credential(), { kind: 'RefreshToken', grantId: 'g', exp: inAnHour() });
      const first = await migrateCredentialsAtRest({ storage: diskFull, secretBox: box, logger: logs.logger, idleClientTtl: POLICY.idleClientTtl });
      assert.equal(first.tokens, 1);
      assert.equal(first.scrubbed, false);
      assert.ok(logs.some((line) => line.event === 'storage.scrub_failed'));
      const second = await migrateCredentialsAtRest({ storage: diskFull, secretBox: box, logger: logs.logger, idleClientTtl: POLICY.idleClientTtl });
      assert.equal(second.tokens, 0);
      assert.equal(second.scrubbed, true, 'retried although nothing was left to move');
      const third = await migrateCredentialsAtRest({ storage: diskFull, secretBox: box, logger: logs.logger, idleClientTtl: POLICY.idleClientTtl });
      assert.equal(third.scrubbed, undefined, 'and not again once done');
    } finally {
      await storage.close();
    }
  });

  test('two replicas migrating one file at once move each row exactly once', async () => {
    const path = join(tempDir, 'replicas', 'gateway.db');
    const replicaA = new SqliteStorage(path);
    const replicaB = new SqliteStorage(path);
    const box = new SecretBox([randomBytes(32)]);
    const logger = new LogWatch('silent').logger;
    try {
      const tokens = Array.from({ length: 50 }, credential);
      for (const token of tokens)
        await writeLegacyToken(replicaA, 'RefreshToken', token, { kind: 'RefreshToken', grantId: `grant-${token.slice(0, 4)}`, exp: inAnHour() });
      const reports = await Promise.all(
        [replicaA, replicaB].map((storage) => migrateCredentialsAtRest({ storage, secretBox: box, logger, idleClientTtl: POLICY.idleClientTtl })),
      );
      assert.equal(reports[0]!.tokens + reports[1]!.tokens, tokens.length);
      const rows = await replicaB.list('oidc:RefreshToken');
      assert.deepEqual(rows.map((row) => row.key).sort(), tokens.map(hashedKey).sort());
    } finally {
      await replicaA.close();
      await replicaB.close();
    }
  });

  test('a replica that listed a row another one has already moved and used does not write it back', async () => {
    const storage = new MemoryStorage();
    const box = new SecretBox([randomBytes(32)]);
    const logger = new LogWatch('silent').logger;
    const token = credential();
    await writeLegacyToken(storage, 'RefreshToken', token, { kind: 'RefreshToken', grantId: 'grant-1', exp: inAnHour() });
    // The slow replica's first listing of refresh tokens is taken before the fast one moves and redeems it.
    let overtaken = false;
    const list = async (namespace: string) => {
      const listed = await storage.list(namespace);
      if (namespace === 'oidc:RefreshToken' && !overtaken) {
        overtaken = true;
        await migrateCredentialsAtRest({ storage, secretBox: box, logger, idleClientTtl: POLICY.idleClientTtl });
        await adapters(storage, box)('RefreshToken').consume(token);
      }
      return listed;
    };
    const slow = new Proxy(storage, {
      get: (target, name) => (name === 'list' ? list : Reflect.get(target, name, target).bind(target)),
    }) as Storage;
    const report = await migrateCredentialsAtRest({ storage: slow, secretBox: box, logger, idleClientTtl: POLICY.idleClientTtl });
    assert.ok(overtaken);
    assert.equal(report.tokens, 0, 'the row was already claimed');
    assert.equal(typeof (await adapters(storage, box)('RefreshToken').find(token))?.consumed, 'number', 'the redemption is not undone');
  });
});
