import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { demoIdentityProvider } from '../../../src/demo/embedded-default.ts';
import { verifyPassword } from '../../../src/idp/passwords.ts';
import { SqliteStorage } from '../../../src/storage/sqlite.ts';

test('replicas starting together on one fresh store agree on one demo password, printed once', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'demo-user-'));
  const path = join(dir, 'gateway.db');
  // Three connections to one file stand for three replicas sharing one store.
  const replicas = [new SqliteStorage(path), new SqliteStorage(path), new SqliteStorage(path)];
  try {
    const announced: string[] = [];
    const providers = await Promise.all(replicas.map((storage) => demoIdentityProvider(storage, (line) => announced.push(line))));
    assert.equal(announced.length, 1, 'exactly one replica prints a password');
    const hashes = new Set(providers.map((provider) => provider.users[0]?.passwordHash));
    assert.equal(hashes.size, 1, 'every replica accepts the same password');
    const password = /password: (\S+)/.exec(announced[0] ?? '')?.[1];
    assert.ok(password);
    assert.equal(await verifyPassword(password, [...hashes][0] ?? ''), true, 'the printed password is the one stored');
  } finally {
    for (const storage of replicas) await storage.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
