/**
 * CPU time per SQLite storage operation, in this process (no HTTP): the operations one refresh grant
 * makes (src/authorization/adapter.ts), `addToSet` on a grant index that already holds many members,
 * which is what a long-lived grant's refresh does, and sealing and opening a token response with the
 * SecretBox (a refresh seals its outcome for the reuse grace period). Run pinned for stable figures:
 * `taskset -c 1 node bench/storage-ops.ts [--members 1000]`.
 */

import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SecretBox } from '../src/storage/secret-box.ts';
import { SqliteStorage } from '../src/storage/sqlite.ts';
import { benchArgs } from './harness.ts';

const MEMBERS = Number(benchArgs().get('members') ?? 1000);
const N = 5000;
const dir = mkdtempSync(join(tmpdir(), 'mcpgw-storage-ops-'));
const storage = new SqliteStorage(join(dir, 'gateway.db'));
// The shape of a refresh token record.
const payload = {
  iat: 1,
  exp: 2,
  accountId: 'a'.repeat(43),
  grantId: 'g'.repeat(43),
  clientId: 'c'.repeat(30),
  kind: 'RefreshToken',
  jti: 'j'.repeat(43),
  resource: 'http://localhost:8080/mcp',
  sessionUid: 'u'.repeat(21),
};

async function time(label: string, count: number, operation: (i: number) => Promise<unknown>): Promise<void> {
  const before = process.cpuUsage();
  for (let i = 0; i < count; i++) await operation(i);
  const used = process.cpuUsage(before);
  console.log(`${label.padEnd(44)} ${((used.user + used.system) / count).toFixed(1).padStart(7)} µs CPU`);
}

try {
  await time('set', N, (i) => storage.set('oidc:RefreshToken', `k${i}`, payload, 3600));
  await time('get', N, (i) => storage.get('oidc:RefreshToken', `k${i}`));
  await time('increment', N, (i) => storage.increment('oidc:consumed', `k${i}`, 3600));
  await time('expire (a value)', N, (i) => storage.expire('oidc:RefreshToken', `k${i}`, 7200));
  await time('addToSet (a new set each time)', N, (i) => storage.addToSet('oidc:grant-index', `new${i}`, `RefreshToken:k${i}`, 3600));
  for (let i = 0; i < MEMBERS; i++) await storage.addToSet('oidc:grant-index', 'old', `RefreshToken:${'t'.repeat(43)}${i}`, 3600 + i);
  await time(`addToSet (a set of ${MEMBERS}+ members)`, 200, (i) => storage.addToSet('oidc:grant-index', 'old', `RefreshToken:more${i}`, 7200 + i));
  const box = new SecretBox([randomBytes(32)]);
  const response = JSON.stringify({ access_token: 'a'.repeat(700), refresh_token: 'r'.repeat(43), token_type: 'Bearer', expires_in: 300 });
  const sealed = box.seal(response, 'context');
  await time('SecretBox seal (a token response)', N, async () => box.seal(response, 'context'));
  await time('SecretBox open', N, async () => box.open(sealed, 'context'));
} finally {
  await storage.close();
  rmSync(dir, { recursive: true, force: true });
}
