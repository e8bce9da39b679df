/**
 * One instance's live signing keys (src/authorization/signing-key-ring.ts) against real storage:
 * replicas racing to rotate publish one key, a flood of made-up kids reads storage once per window,
 * a storage failure keeps the keys held, and oidc-provider's keys are swapped in place
 * (src/authorization/provider-keystore.ts).
 */
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { generateKeyPair, SignJWT } from 'jose';
import Provider from 'oidc-provider';
import { loadOrCreateKeys, readSigningKeys, updateSigningKeys } from '../../../src/authorization/keys.ts';
import { attachSigningKeys } from '../../../src/authorization/provider-keystore.ts';
import { SigningKeyRing, UNKNOWN_KID_RELOAD_MS } from '../../../src/authorization/signing-key-ring.ts';
import { generateSigningJwk, type SigningKeyPolicy, signingKeyState, withNextKey } from '../../../src/authorization/signing-keys.ts';
import type { Clock } from '../../../src/core/clock.ts';
import { ErrorCode } from '../../../src/core/errors.ts';
import { createTokenVerifier } from '../../../src/resource-server/token-verifier.ts';
import { MemoryStorage } from '../../../src/storage/memory.ts';
import { SecretBox } from '../../../src/storage/secret-box.ts';
import { SqliteStorage } from '../../../src/storage/sqlite.ts';
import type { Storage } from '../../../src/storage/types.ts';
import { TestClock } from '../../support/clock.ts';
import { event, LogWatch } from '../../support/log-watch.ts';
import { createMemoryAdapter } from '../../support/oidc-memory-adapter.ts';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const policy: SigningKeyPolicy = { rotationPeriodMs: 30 * DAY, prePublicationMs: HOUR, retentionMs: 2 * HOUR };

async function ringOn(storage: Storage, box: SecretBox, clock: Clock, log = new LogWatch('debug')): Promise<SigningKeyRing> {
  const keys = await loadOrCreateKeys(storage, box, undefined, clock);
  return new SigningKeyRing({ storage, secretBox: box, clock, logger: log.logger, policy, initial: keys });
}

/** Counts reads of the key record on a real store (a storage flood would show here). */
function countingKeyReads(storage: Storage): { storage: Storage; reads: () => number } {
  let reads = 0;
  const counted = new Proxy(storage, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver);
      if (property !== 'get' || typeof value !== 'function') return typeof value === 'function' ? value.bind(target) : value;
      return (namespace: string, key: string) => {
        if (namespace === 'key' && key === 'gateway-keys') reads++;
        return value.call(target, namespace, key);
      };
    },
  });
  return { storage: counted, reads: () => reads };
}

describe('signing-key ring', () => {
  test('replicas due at the same moment on one SQLite file publish exactly one next key, which all of them see at their next read', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'keyring-'));
    const clock = new TestClock();
    const box = new SecretBox([randomBytes(32)]);
    const stores = [0, 1, 2].map(() => new SqliteStorage(join(dir, 'gateway.db'), { clock }));
    try {
      const logs = stores.map(() => new LogWatch('debug'));
      const rings = await Promise.all(stores.map((storage, index) => ringOn(storage, box, clock, logs[index])));
      clock.advance(30 * DAY - HOUR);
      await Promise.all(rings.map((ring) => ring.maintain()));
      const stored = await readSigningKeys(stores[0]!, box);
      assert.equal(stored?.signing.length, 2, 'one key added, not one per replica');
      assert.equal(logs.filter((log) => log.some(event('signing_key.published'))).length, 1, 'one replica published');
      // The replicas that lost the lock see the key at their next read, and add none of their own.
      await Promise.all(rings.map((ring) => ring.maintain()));
      assert.equal((await readSigningKeys(stores[0]!, box))?.signing.length, 2);
      const pending = new Set(rings.map((ring) => ring.state().pending?.jwk.kid));
      assert.deepEqual([...pending], [stored?.signing[1]?.jwk.kid]);
    } finally {
      for (const storage of stores) await storage.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a flood of made-up kids reads the key record once per window; a real new kid is learned', async () => {
    const clock = new TestClock();
    const box = new SecretBox([randomBytes(32)]);
    const memory = new MemoryStorage({ clock });
    const { storage, reads } = countingKeyReads(memory);
    const ring = await ringOn(storage, box, clock);
    const verifier = createTokenVerifier({
      issuer: 'https://gw.example.com',
      publicKeys: () => ring.publicKeys(),
      refreshKeys: (kid) => ring.refreshForUnknownKid(kid),
      clock,
    });
    const { privateKey } = await generateKeyPair('ES256');
    const bogus = (kid: string) =>
      new SignJWT({ client_id: 'c', sub: 'u' })
        .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid })
        .setIssuer('https://gw.example.com')
        .setAudience('https://gw.example.com/mcp')
        .setExpirationTime(Math.floor(clock.now() / 1000) + 300)
        .sign(privateKey);

    const before = reads();
    const results = await Promise.all(Array.from({ length: 50 }, async () => verifier.verify(await bogus(randomUUID()), 'https://gw.example.com/mcp')));
    assert.ok(results.every((result) => !result.ok && result.reason === 'invalid'));
    assert.equal(reads() - before, 1, 'fifty unknown kids, one read');
    clock.advance(UNKNOWN_KID_RELOAD_MS);
    await verifier.verify(await bogus(randomUUID()), 'https://gw.example.com/mcp');
    assert.equal(reads() - before, 2, 'one more read once the window has passed');

    // Another writer (a replica, or `keys rotate`) publishes a key: a token naming it makes this
    // instance read the record and know it, without waiting for the periodic reload.
    clock.advance(UNKNOWN_KID_RELOAD_MS);
    const update = await updateSigningKeys(memory, box, async (current) => withNextKey(current, await generateSigningJwk(), clock.now(), policy));
    assert.equal(update.outcome, 'written');
    const newKid = String(update.outcome === 'written' && update.signing.at(-1)?.jwk.kid);
    assert.equal(await ring.refreshForUnknownKid(newKid), true);
    assert.ok(ring.publicKeys().some((key) => key.kid === newKid));
  });

  test('a storage failure while reading keeps the keys held, logged, and never rejects', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'keyring-'));
    const clock = new TestClock();
    const box = new SecretBox([randomBytes(32)]);
    const storage = new SqliteStorage(join(dir, 'gateway.db'), { clock });
    const log = new LogWatch('debug');
    try {
      const ring = await ringOn(storage, box, clock, log);
      const held = ring.publicKeys();
      await storage.close();
      clock.advance(30 * DAY);
      await ring.ensureFresh();
      assert.deepEqual(ring.publicKeys(), held);
      assert.ok(log.some(event('signing_key.reload_failed')));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('the record lock makes a second writer wait, or give up with busy', async () => {
    const clock = new TestClock();
    const box = new SecretBox([randomBytes(32)]);
    const storage = new MemoryStorage({ clock });
    await loadOrCreateKeys(storage, box, undefined, clock);
    let release: () => void = () => {};
    const holding = updateSigningKeys(storage, box, () => new Promise((resolve) => (release = () => resolve(undefined))));
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(await updateSigningKeys(storage, box, async () => undefined), { outcome: 'busy' });
    release();
    assert.equal((await holding).outcome, 'unchanged');
    assert.equal((await updateSigningKeys(storage, box, async () => undefined)).outcome, 'unchanged', 'the lock is released');
  });

  test('updating keys in a store the gateway never used says so with a code', async () => {
    const box = new SecretBox([randomBytes(32)]);
    await assert.rejects(
      updateSigningKeys(new MemoryStorage(), box, async () => undefined),
      { code: ErrorCode.AUTHORIZATION_KEYS_MISSING },
    );
  });
});

describe("oidc-provider's keys swapped in place", () => {
  test('the JWKS it serves follows the state, the active key first', async () => {
    const [first, second] = [await generateSigningJwk(), await generateSigningJwk()];
    const provider = new Provider('http://localhost', {
      jwks: { keys: [first] } as never,
      features: { devInteractions: { enabled: false } },
      adapter: createMemoryAdapter(),
    });
    const now = Date.now();
    const entries = [
      { jwk: first, createdAt: now - DAY, activatesAt: now - DAY },
      { jwk: second, createdAt: now - HOUR, activatesAt: now },
    ];
    const install = await attachSigningKeys(provider, signingKeyState(entries, now - 1, policy.retentionMs));
    const server = createServer(provider.callback());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const jwks = async () => {
        const response = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks`);
        return ((await response.json()) as { keys: Array<{ kid: string; d?: string }> }).keys;
      };
      assert.deepEqual(
        (await jwks()).map((key) => key.kid),
        [first.kid, second.kid],
      );
      install(signingKeyState(entries, now, policy.retentionMs));
      const swapped = await jwks();
      assert.deepEqual(
        swapped.map((key) => key.kid),
        [second.kid, first.kid],
      );
      assert.ok(swapped.every((key) => key.d === undefined));
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  test('an oidc-provider that keeps its keys elsewhere is refused at start-up, not at the first rotation', async () => {
    const jwk = await generateSigningJwk();
    const state = signingKeyState([{ jwk, createdAt: 0, activatesAt: 0 }], Date.now(), policy.retentionMs);
    await assert.rejects(attachSigningKeys({} as Provider, state), { code: ErrorCode.AUTHORIZATION_SETUP });
  });
});
