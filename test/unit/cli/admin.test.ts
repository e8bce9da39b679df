/**
 * The admin commands (src/cli/admin.ts) in process, for what needs no login: a store no gateway has
 * used yet (SQLite, and a real redis-server), a Redis nobody listens on, a memory store, an email several users share, the audit logger's level and actor, and the
 * table printer's handling of hostile client names. The commands against a running gateway, with real
 * logins, are in test/e2e/admin.test.ts.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runAdmin } from '../../../src/cli/admin.ts';
import { adminAuditLogger, currentActor } from '../../../src/cli/admin-audit.ts';
import { isoTime, table } from '../../../src/cli/admin-output.ts';
import { loadConfig } from '../../../src/config/load.ts';
import { openStorage } from '../../../src/storage/index.ts';
import { NS, type UserRecord } from '../../../src/storage/records.ts';
import { capturedIo } from '../../support/cli.ts';
import { freePort } from '../../support/ports.ts';
import { type RunningRedis, redisUnavailable, startRedis } from '../../support/redis.ts';

/** An empty environment: no MCP_GATEWAY_* override of this process reaches the config loader. */
function fakeIo() {
  return { ...capturedIo(), env: {} };
}

/** `storage` is the YAML flow mapping's content, e.g. `type: sqlite`; `extra` are more top-level lines. */
async function writeConfig(dir: string, storage: string, extra: string[] = []): Promise<string> {
  const port = await freePort();
  const file = join(dir, 'gateway.yaml');
  await writeFile(
    file,
    [`publicUrl: http://localhost:${port}`, `dataDir: ${JSON.stringify(dir)}`, `storage: { ${storage} }`, 'log: { level: silent }', ...extra, ''].join('\n'),
  );
  return file;
}

function user(id: string, email: string): UserRecord {
  const [provider, subject] = id.split(':') as [string, string];
  return { id, provider, subject, email, name: id, groups: [], createdAt: 1_700_000_000, lastLoginAt: 1_700_000_100 };
}

for (const backend of ['sqlite', 'redis'] as const) {
  describe(`admin commands on a store no gateway has used (${backend})`, { skip: backend === 'redis' ? (redisUnavailable() ?? false) : false }, () => {
    let dir: string;
    let configFile: string;
    let redis: RunningRedis | undefined;
    before(async () => {
      dir = await mkdtemp(join(tmpdir(), 'mcpgw-admin-'));
      if (backend === 'redis') {
        redis = await startRedis();
        // Redis storage requires explicit keys (src/config/schema/storage.ts, sharedStorageKeyProblem).
        configFile = await writeConfig(dir, `type: redis, url: "${redis.url}"`, [`secrets: { encryptionKeys: ["${randomBytes(32).toString('base64')}"] }`]);
      } else {
        configFile = await writeConfig(dir, 'type: sqlite');
      }
    });
    after(async () => {
      await redis?.close();
      await rm(dir, { recursive: true, force: true });
    });

    test('lists are empty, keys are missing, unknown ids exit 3, and no encryption key is created', async () => {
      const clients = fakeIo();
      assert.equal(await runAdmin(['clients', 'list', '-c', configFile], clients), 0, clients.err());
      assert.equal(clients.out(), 'no clients\n');
      for (const [group, key] of [
        ['clients', 'clients'],
        ['grants', 'grants'],
        ['users', 'users'],
      ]) {
        const io = fakeIo();
        assert.equal(await runAdmin([group!, 'list', '--json', '-c', configFile], io), 0, io.err());
        assert.deepEqual(JSON.parse(io.out()), { [key!]: [] });
      }
      const keys = fakeIo();
      assert.equal(await runAdmin(['keys', '-c', configFile], keys), 1);
      assert.match(keys.err(), /ERR_AUTHORIZATION_KEYS_MISSING/);
      const revoke = fakeIo();
      assert.equal(await runAdmin(['revoke', '--user', 'corp:nobody', '-c', configFile], revoke), 3);
      assert.match(revoke.err(), /no user "corp:nobody".*ERR_CLI_ADMIN_NOT_FOUND/);
      assert.equal(existsSync(join(dir, 'encryption.key')), false);
    });

    test('an email two users share (two identity providers) is refused; their ids work', async () => {
      const config = await loadConfig({ path: configFile, env: {} });
      const storage = await openStorage(config);
      try {
        await storage.set(NS.users, 'corp:alice', user('corp:alice', 'alice@example.com'));
        await storage.set(NS.users, 'github:1234', user('github:1234', 'Alice@Example.com'));
      } finally {
        await storage.close();
      }
      const ambiguous = fakeIo();
      assert.equal(await runAdmin(['revoke', '--user', 'alice@example.com', '-c', configFile], ambiguous), 1);
      assert.match(
        ambiguous.err(),
        /several users have the email alice@example\.com: corp:alice, github:1234; name one by its user id \(ERR_CLI_ADMIN_AMBIGUOUS_USER\)/,
      );
      const grants = fakeIo();
      assert.equal(await runAdmin(['grants', 'list', '--user', 'alice@example.com', '-c', configFile], grants), 1);

      const byId = fakeIo();
      const audit: Array<Record<string, unknown>> = [];
      const auditLogger = { info: (fields: Record<string, unknown>) => audit.push(fields) } as never;
      assert.equal(await runAdmin(['revoke', '--user', 'github:1234', '--json', '-c', configFile], { ...byId, auditLogger }), 0, byId.err());
      assert.deepEqual(JSON.parse(byId.out()), { by: 'user', userId: 'github:1234', revokedGrants: [] });
      assert.equal(audit[0]?.event, 'admin.grants_revoked');
      assert.equal(audit[0]?.grantsRevoked, 0);
      assert.equal(existsSync(join(dir, 'encryption.key')), false, 'nothing to revoke: no key read or created');

      const users = fakeIo();
      assert.equal(await runAdmin(['users', 'list', '-c', configFile], users), 0);
      assert.match(users.out(), /^USER ID\s+EMAIL\s+NAME\s+PROVIDER\s+FIRST LOGIN\s+LAST LOGIN\s+GRANTS$/m);
      assert.match(users.out(), /^corp:alice\s+alice@example\.com\s+corp:alice\s+corp\s+2023-11-14T22:13:20Z\s+2023-11-14T22:15:00Z\s+0$/m);
    });
  });
}

test('a Redis nobody listens on fails fast with the address and the storage code, without a password in it', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mcpgw-admin-'));
  try {
    const port = await freePort();
    const configFile = await writeConfig(dir, `type: redis, url: "redis://127.0.0.1:${port}", password: "redis-password-not-printed", connectTimeoutMs: 1000`, [
      `secrets: { encryptionKeys: ["${randomBytes(32).toString('base64')}"] }`,
    ]);
    await assert.rejects(runAdmin(['clients', 'list', '-c', configFile], fakeIo()), (error: Error & { code?: string }) => {
      assert.equal(error.code, 'ERR_STORAGE_UNAVAILABLE');
      assert.match(error.message, new RegExp(`cannot connect to Redis at redis://127\\.0\\.0\\.1:${port}`));
      assert.doesNotMatch(error.message, /redis-password-not-printed/);
      return true;
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a memory store is refused: it lives inside the gateway process', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mcpgw-admin-'));
  try {
    const io = fakeIo();
    assert.equal(await runAdmin(['clients', 'list', '-c', await writeConfig(dir, 'type: memory')], io), 1);
    assert.match(io.err(), /ERR_CLI_ADMIN_STORAGE_NOT_SHARED/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('the audit logger writes admin events even when log.level is quieter than info', () => {
  assert.equal(adminAuditLogger({ log: { level: 'silent' } }).level, 'info');
  assert.equal(adminAuditLogger({ log: { level: 'warn' } }).level, 'info');
  assert.equal(adminAuditLogger({ log: { level: 'debug' } }).level, 'debug');
  const actor = currentActor({ SUDO_USER: 'alice' });
  assert.ok(actor.actor.length > 0);
  assert.equal(actor.sudoUser, 'alice');
  assert.equal(currentActor({}).sudoUser, undefined);
});

test('with a file as audit.destination, admin events are appended to it as well as written to stderr', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'admin-audit-'));
  try {
    const file = join(dir, 'audit', 'audit.log');
    await mkdir(dirname(file), { recursive: true });
    await writeFile(file, '{"event":"mcp.call","stream":"audit"}\n');
    const logger = adminAuditLogger({ log: { level: 'warn' }, audit: { destination: file } });
    logger.info({ event: 'admin.grants_revoked', grantsRevoked: 2, actor: 'root' }, 'grants revoked');
    const lines = (await readFile(file, 'utf8'))
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    assert.equal(lines.length, 2, 'appended after what the gateways wrote, nothing replaced');
    assert.equal(lines[1]?.event, 'admin.grants_revoked');
    assert.equal(lines[1]?.grantsRevoked, 2);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('tables escape control characters, so a client name cannot rewrite the operator terminal', () => {
  const printed = table(
    ['ID', 'NAME'],
    [
      ['a', 'plain'],
      ['b', 'evil\u001b[2J\nsecond line'],
      ['c', null],
    ],
  );
  assert.equal(printed, 'ID  NAME\na   plain\nb   evil\\u001b[2J\\u000asecond line\nc   -\n');
  assert.equal(isoTime(1_700_000_000), '2023-11-14T22:13:20Z');
  assert.equal(isoTime(1_700_000_000_123, 'milliseconds'), '2023-11-14T22:13:20Z');
  assert.equal(isoTime(null), null);
  assert.equal(isoTime(0), null);
});
