import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { loadOrCreateKeys } from '../../../src/authorization/keys.ts';
import { SigningKeyRing } from '../../../src/authorization/signing-key-ring.ts';
import { generateSigningJwk, publicJwk } from '../../../src/authorization/signing-keys.ts';
import { ErrorCode, hasErrorCode } from '../../../src/core/errors.ts';
import { createLogger } from '../../../src/observability/logger.ts';
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
  assert.ok(keys.signing.every((entry) => publicJwk(entry.jwk).d === undefined));
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

test('a record from before rotation existed (a bare list of keys) loads as the active key, and the first rotation keeps it until its successor signs', async () => {
  const storage = new MemoryStorage();
  const box = new SecretBox([randomBytes(32)]);
  const legacyKey = await generateSigningJwk();
  await storage.set(
    'key',
    'gateway-keys',
    box.sealJson({ signing: [legacyKey], cookieKeys: ['c'], consentSecret: randomBytes(32).toString('base64url') }, 'gateway-keys'),
  );
  const keys = await loadOrCreateKeys(storage, box);
  assert.deepEqual(keys.signing, [{ jwk: legacyKey, createdAt: 0, activatesAt: 0 }]);
  const ring = new SigningKeyRing({
    storage,
    secretBox: box,
    clock: { now: () => Date.now() },
    logger: createLogger('silent'),
    policy: { rotationPeriodMs: 90 * 86_400_000, prePublicationMs: 3_600_000, retentionMs: 3_900_000 },
    initial: keys,
  });
  await ring.maintain();
  const state = ring.state();
  assert.equal(state.active.jwk.kid, legacyKey.kid, 'the old key still signs');
  assert.ok(state.pending && state.pending.jwk.kid !== legacyKey.kid, 'its successor is published, waiting');
  assert.deepEqual((await loadOrCreateKeys(storage, box)).cookieKeys, ['c'], 'the other secrets are kept');
});
