import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { loadOrCreateKeys, publicJwks } from '../../../src/authorization/keys.ts';
import { ErrorCode, hasErrorCode } from '../../../src/core/errors.ts';
import { MemoryStorage } from '../../../src/storage/memory.ts';
import { SecretBox } from '../../../src/storage/secret-box.ts';

test('replicas starting together on one fresh store end with the same keys', async () => {
  const storage = new MemoryStorage();
  const box = new SecretBox([randomBytes(32)]);
  const replicas = await Promise.all(Array.from({ length: 5 }, () => loadOrCreateKeys(storage, box)));
  const kids = new Set(replicas.map((keys) => keys.signing[0]!.jwk.kid));
  assert.equal(kids.size, 1);
  assert.equal(new Set(replicas.map((keys) => keys.consentSecret.toString('hex'))).size, 1);
});

test('keys are stored sealed, and only public halves are published', async () => {
  const storage = new MemoryStorage();
  const box = new SecretBox([randomBytes(32)]);
  const keys = await loadOrCreateKeys(storage, box);
  const stored = await storage.get<string>('key', 'gateway-keys');
  assert.ok(stored && !stored.includes(String(keys.signing[0]!.jwk.d)), 'private key not stored in clear');
  assert.ok(publicJwks(keys, Date.now(), 0).every((jwk) => jwk.d === undefined));
  const again = await loadOrCreateKeys(storage, box);
  assert.equal(again.signing[0]!.jwk.kid, keys.signing[0]!.jwk.kid, 'loaded, not regenerated');
  // Another encryption key cannot open them.
  await assert.rejects(loadOrCreateKeys(storage, new SecretBox([randomBytes(32)])), { code: ErrorCode.SECRET_BOX_OPEN_FAILED });
});

test('rotating the encryption key re-seals the key record, after which the old key can go', async () => {
  const storage = new MemoryStorage();
  const oldKey = randomBytes(32);
  const newKey = randomBytes(32);
  const keys = await loadOrCreateKeys(storage, new SecretBox([oldKey]));
  const rotated = await loadOrCreateKeys(storage, new SecretBox([newKey, oldKey]));
  assert.equal(rotated.signing[0]!.jwk.kid, keys.signing[0]!.jwk.kid);
  const withoutOld = await loadOrCreateKeys(storage, new SecretBox([newKey]));
  assert.equal(withoutOld.signing[0]!.jwk.kid, keys.signing[0]!.jwk.kid, 'opens with the new key alone');
});

test('a replica that lost the creation claim gives up with a code when no keys ever appear', async (t) => {
  const storage = new MemoryStorage();
  const box = new SecretBox([randomBytes(32)]);
  // Another replica holds the claim but never stores the keys.
  await storage.increment('key', 'gateway-keys-creator', 10);
  // The ten-second wait runs on mocked timers: the test advances the clock instead of sleeping.
  t.mock.timers.enable({ apis: ['Date', 'setTimeout'] });
  const loading = loadOrCreateKeys(storage, box);
  let outcome: unknown;
  loading.then(
    () => (outcome = 'loaded'),
    (error: unknown) => (outcome = error),
  );
  for (let step = 0; step < 200 && outcome === undefined; step++) {
    await new Promise<void>((resolve) => setImmediate(resolve));
    t.mock.timers.tick(100);
  }
  assert.ok(hasErrorCode(outcome, ErrorCode.AUTHORIZATION_KEYS_NOT_CREATED), String(outcome));
});
