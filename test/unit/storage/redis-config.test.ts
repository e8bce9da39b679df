/**
 * The `storage: { type: redis }` block as operators write it: URL forms (TLS, database), credentials
 * kept out of the URL and given as references, plaintext refused off loopback, and a password that
 * never appears in a configuration error.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { ConfigError, loadConfig } from '../../../src/config/load.ts';
import { configSchema } from '../../../src/config/schema.ts';
import { ErrorCode } from '../../../src/core/errors.ts';
import { createLogger } from '../../../src/observability/logger.ts';
import { openStorage } from '../../../src/storage/index.ts';
import { createTestCa, opensslAvailable } from '../../support/tls.ts';

let dir = '';
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'redis-config-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Replicas share one encryption key (the schema requires it with Redis). */
const SECRETS = { encryptionKeys: [Buffer.alloc(32, 7).toString('base64')] };
const SECRETS_YAML = `secrets:\n  encryptionKeys: ['${SECRETS.encryptionKeys[0]}']\n`;

function storageIssues(storage: Record<string, unknown>): Array<{ path: string; message: string }> {
  const result = configSchema.safeParse({ storage, secrets: SECRETS });
  if (result.success) return [];
  return result.error.issues.map((issue) => ({ path: issue.path.join('.'), message: issue.message }));
}

async function loadYaml(yaml: string, env: Record<string, string> = {}) {
  const path = join(dir, `config-${Math.random().toString(36).slice(2)}.yaml`);
  await writeFile(path, SECRETS_YAML + yaml);
  return loadConfig({ path, env });
}

describe('storage: redis configuration', () => {
  test('defaults: key prefix, timeouts, no plaintext off loopback', () => {
    const config = configSchema.parse({ storage: { type: 'redis', url: 'redis://127.0.0.1:6379' }, secrets: SECRETS });
    assert.deepEqual(config.storage, {
      type: 'redis',
      url: 'redis://127.0.0.1:6379',
      keyPrefix: 'mcp-gateway:',
      allowPlaintext: false,
      connectTimeoutMs: 5000,
      commandTimeoutMs: 2000,
    });
  });

  test('accepts rediss:// anywhere, a database path, and redis:// on loopback', () => {
    for (const url of ['rediss://redis.internal:6380', 'rediss://redis.internal:6380/3', 'redis://localhost', 'redis://[::1]:6379/0']) {
      assert.deepEqual(storageIssues({ type: 'redis', url }), [], url);
    }
  });

  test('requires configured encryption keys, which every replica must share', () => {
    const result = configSchema.safeParse({ storage: { type: 'redis', url: 'redis://127.0.0.1' } });
    assert.equal(result.success, false);
    assert.deepEqual(
      result.error?.issues.map((issue) => issue.path.join('.')),
      ['secrets.encryptionKeys'],
    );
    assert.equal(configSchema.safeParse({ storage: { type: 'sqlite' } }).success, true, 'SQLite may keep a generated key in dataDir');
  });

  test('refuses plaintext to another host unless allowPlaintext, and says how to fix it', () => {
    const issues = storageIssues({ type: 'redis', url: 'redis://redis.internal:6379' });
    assert.equal(issues.length, 1);
    assert.equal(issues[0]!.path, 'storage.url');
    assert.match(issues[0]!.message, /rediss:\/\//);
    assert.deepEqual(storageIssues({ type: 'redis', url: 'redis://redis.internal:6379', allowPlaintext: true }), []);
  });

  test('refuses credentials in the URL without repeating them', () => {
    const issues = storageIssues({ type: 'redis', url: 'rediss://admin:s3cret-pass@redis.internal:6380' });
    assert.equal(issues.length, 1);
    assert.equal(issues[0]!.path, 'storage.url');
    assert.match(issues[0]!.message, /storage\.password/);
    assert.doesNotMatch(issues[0]!.message, /s3cret-pass|admin/);
  });

  test('refuses what is not a Redis URL, a query, and a CA file without TLS', () => {
    assert.equal(storageIssues({ type: 'redis', url: 'http://127.0.0.1:6379' })[0]?.path, 'storage.url');
    assert.equal(storageIssues({ type: 'redis', url: 'redis://127.0.0.1:6379/0?ssl=true' })[0]?.path, 'storage.url');
    assert.equal(storageIssues({ type: 'redis', url: 'redis://127.0.0.1:6379/db' })[0]?.path, 'storage.url');
    assert.equal(storageIssues({ type: 'redis', url: 'redis://127.0.0.1', keyPrefix: '' })[0]?.path, 'storage.keyPrefix');
    const missingCa = storageIssues({ type: 'redis', url: 'rediss://redis.internal', tls: { caFile: join(dir, 'missing.pem') } });
    assert.equal(missingCa[0]?.path, 'storage.tls.caFile');
  });

  test('a CA file is checked to be PEM and allowed only with rediss://', { skip: opensslAvailable() ? false : 'openssl not installed' }, async () => {
    const ca = await createTestCa();
    assert.deepEqual(storageIssues({ type: 'redis', url: 'rediss://redis.internal', tls: { caFile: ca.caFile } }), []);
    const plain = storageIssues({ type: 'redis', url: 'redis://127.0.0.1', tls: { caFile: ca.caFile } });
    assert.deepEqual(
      plain.map((issue) => issue.path),
      ['storage.tls.caFile'],
    );
  });

  test('username and password as env and file references, like every other secret', async () => {
    const secretFile = join(dir, 'redis-password');
    await writeFile(secretFile, 'from-a-file-0123\n');
    const fromEnv = await loadYaml(
      `storage:\n  type: redis\n  url: rediss://redis.internal:6380\n  username: \${env:REDIS_USER}\n  password: \${env:REDIS_PASSWORD}\n`,
      { REDIS_USER: 'gateway', REDIS_PASSWORD: 'from-the-env-0123' },
    );
    assert.equal(fromEnv.storage.type, 'redis');
    assert.equal(fromEnv.storage.type === 'redis' && fromEnv.storage.username, 'gateway');
    assert.equal(fromEnv.storage.type === 'redis' && fromEnv.storage.password, 'from-the-env-0123');
    const fromFile = await loadYaml(`storage:\n  type: redis\n  url: rediss://redis.internal:6380\n  password: \${file:${secretFile}}\n`);
    assert.equal(fromFile.storage.type === 'redis' && fromFile.storage.password, 'from-a-file-0123');
  });

  test('a configuration error never shows the password', async () => {
    await assert.rejects(
      loadYaml(
        `storage:\n  type: redis\n  url: redis://redis.internal:6379\n  password: \${env:REDIS_PASSWORD}\n  commandTimeoutMs: \${env:REDIS_PASSWORD}\n`,
        {
          REDIS_PASSWORD: 'leaky-password-0123',
        },
      ),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError);
        const text = JSON.stringify(error.problems) + error.message;
        assert.match(text, /storage\.url/);
        assert.doesNotMatch(text, /leaky-password-0123/);
        return true;
      },
    );
  });

  test('the storage block logged as it is shows the URL but not the password', () => {
    let text = '';
    const sink = new Writable({
      write(chunk, _encoding, done) {
        text += String(chunk);
        done();
      },
    });
    const config = configSchema.parse({
      storage: { type: 'redis', url: 'rediss://redis.internal:6380', username: 'gateway', password: 'logged-nowhere-0123' },
      secrets: SECRETS,
    });
    createLogger('info', sink).info({ storage: config.storage }, 'storage');
    assert.match(text, /rediss:\/\/redis\.internal:6380/);
    assert.doesNotMatch(text, /logged-nowhere-0123/);
  });

  test('openStorage reports an unreachable Redis as ERR_STORAGE_UNAVAILABLE', async () => {
    const config = configSchema.parse({
      storage: { type: 'redis', url: 'redis://127.0.0.1:1', password: 'never-shown-0123', connectTimeoutMs: 500 },
      secrets: SECRETS,
    });
    await assert.rejects(openStorage(config), (error: Error & { code?: string }) => {
      assert.equal(error.code, ErrorCode.STORAGE_UNAVAILABLE);
      assert.doesNotMatch(error.message, /never-shown/);
      return true;
    });
  });
});
