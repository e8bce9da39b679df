/**
 * The revocation list every replica keeps (src/storage/revocation-list.ts): local revocations apply at
 * once, others' after one poll, the poll timer is the injected ticker (driven by hand, never a sleep),
 * entries are forgotten once no access token of the grant can be live, and a storage outage keeps the
 * revocations already known.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MemoryStorage } from '../../../src/storage/memory.ts';
import { NS } from '../../../src/storage/records.ts';
import { RevocationList, revocationRetentionSeconds, type Ticker } from '../../../src/storage/revocation-list.ts';
import type { Storage } from '../../../src/storage/types.ts';
import { TestClock } from '../../support/clock.ts';

/** A ticker a test fires by hand; it records the interval it was started with. */
function manualTicker() {
  const state: { tick?: () => void; intervalMs?: number; stopped: boolean } = { stopped: false };
  const ticker: Ticker = (tick, intervalMs) => {
    state.tick = tick;
    state.intervalMs = intervalMs;
    return () => {
      state.stopped = true;
    };
  };
  return { ticker, state };
}

/** The real storage with some methods replaced (the backends keep private fields, so no prototype tricks). */
function withOverrides(storage: Storage, overrides: Partial<Storage>): Storage {
  return new Proxy(storage, {
    get(target, property, receiver) {
      if (property in overrides) return overrides[property as keyof Storage];
      const value = Reflect.get(target, property, receiver);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

/** Counts storage reads, to show what a poll costs. */
function countingReads(storage: Storage) {
  const counts = { get: 0, list: 0 };
  const counted = withOverrides(storage, {
    get: ((namespace: string, key: string) => {
      counts.get++;
      return storage.get(namespace, key);
    }) as Storage['get'],
    list: ((namespace: string) => {
      counts.list++;
      return storage.list(namespace);
    }) as Storage['list'],
  });
  return { counted, counts };
}

function replicas(clock = new TestClock()) {
  const storage = new MemoryStorage({ clock });
  const options = { storage, retentionSeconds: 360, pollIntervalMs: 1000, clock };
  return { storage, clock, a: new RevocationList(options), b: new RevocationList(options) };
}

describe('revocation list', () => {
  test('a revocation applies at once where it is made, and elsewhere after the next poll', async () => {
    const { a, b } = replicas();
    const revoking = a.revoke('grant-1');
    assert.equal(a.isRevoked('grant-1'), true, 'before the write has even finished');
    await revoking;
    assert.equal(b.isRevoked('grant-1'), false, 'no storage read until the poll');
    await b.sync();
    assert.equal(b.isRevoked('grant-1'), true);
    assert.equal(b.isRevoked('grant-2'), false);
  });

  test('a poll reads one stamp, and the list only when the stamp changed', async () => {
    const clock = new TestClock();
    const storage = new MemoryStorage({ clock });
    const { counted, counts } = countingReads(storage);
    const writer = new RevocationList({ storage, retentionSeconds: 360, pollIntervalMs: 1000, clock });
    const reader = new RevocationList({ storage: counted, retentionSeconds: 360, pollIntervalMs: 1000, clock });
    await reader.sync();
    await reader.sync();
    await reader.sync();
    assert.deepEqual(counts, { get: 3, list: 0 }, 'nothing revoked yet: one read per poll');
    await writer.revoke('grant-1');
    await reader.sync();
    await reader.sync();
    assert.deepEqual(counts, { get: 5, list: 1 });
    assert.equal(reader.isRevoked('grant-1'), true);
  });

  test('the poller runs on the injected ticker at the configured interval, and stops', async () => {
    const { storage, clock, a } = replicas();
    const { ticker, state } = manualTicker();
    const polled = new RevocationList({ storage, retentionSeconds: 360, pollIntervalMs: 1500, clock, ticker });
    polled.start();
    assert.equal(state.intervalMs, 1500);
    await a.revoke('grant-1');
    assert.equal(polled.isRevoked('grant-1'), false);
    state.tick?.();
    await polled.sync(); // the tick's poll, joined
    assert.equal(polled.isRevoked('grant-1'), true);
    polled.stop();
    assert.equal(state.stopped, true);
  });

  test('a revocation is kept for the access-token lifetime plus skew margins, then forgotten everywhere', async () => {
    const clock = new TestClock();
    const storage = new MemoryStorage({ clock });
    const retentionSeconds = revocationRetentionSeconds(300);
    assert.ok(retentionSeconds > 300 + 5, 'longer than an access token plus the verifier tolerance');
    const a = new RevocationList({ storage, retentionSeconds, pollIntervalMs: 1000, clock });
    const b = new RevocationList({ storage, retentionSeconds, pollIntervalMs: 1000, clock });
    await a.revoke('grant-1');
    await b.sync();
    clock.advance(retentionSeconds * 1000 - 1);
    await a.sync();
    await b.sync();
    assert.equal(a.isRevoked('grant-1'), true);
    assert.equal(b.isRevoked('grant-1'), true);
    clock.advance(1);
    await a.sync();
    await b.sync();
    assert.equal(a.isRevoked('grant-1'), false);
    assert.equal(b.isRevoked('grant-1'), false);
    assert.deepEqual(await storage.list(NS.revokedGrants), []);
  });

  test('a replica started later learns earlier revocations from its first poll', async () => {
    const { storage, clock, a } = replicas();
    await a.revoke('grant-1');
    await a.revoke('grant-2');
    const late = new RevocationList({ storage, retentionSeconds: 360, pollIntervalMs: 1000, clock });
    await late.sync();
    assert.equal(late.isRevoked('grant-1') && late.isRevoked('grant-2'), true);
  });

  test('a reload never drops a local revocation the store does not list yet', async () => {
    const { storage, clock } = replicas();
    let release: () => void = () => {};
    const slowWrites = withOverrides(storage, {
      set: async (...args: Parameters<Storage['set']>) => {
        await new Promise<void>((resolve) => {
          release = resolve;
        });
        return storage.set(...args);
      },
    });
    const other = new RevocationList({ storage, retentionSeconds: 360, pollIntervalMs: 1000, clock });
    await other.revoke('grant-other');
    const local = new RevocationList({ storage: slowWrites, retentionSeconds: 360, pollIntervalMs: 1000, clock });
    const writing = local.revoke('grant-local');
    await local.sync(); // reloads grant-other while grant-local is not stored yet
    assert.equal(local.isRevoked('grant-local'), true);
    assert.equal(local.isRevoked('grant-other'), true);
    release();
    await new Promise((resolve) => setImmediate(resolve));
    release();
    await writing;
  });

  test('when storage cannot be read, the known revocations stay and the outage is logged once', async () => {
    const { storage, clock, a } = replicas();
    const warnings: unknown[] = [];
    const infos: unknown[] = [];
    let broken = false;
    const flaky = withOverrides(storage, {
      get: ((namespace: string, key: string) => (broken ? Promise.reject(new Error('connection refused')) : storage.get(namespace, key))) as Storage['get'],
    });
    const logger = { warn: (entry: unknown) => warnings.push(entry), info: (entry: unknown) => infos.push(entry) };
    const reader = new RevocationList({ storage: flaky, retentionSeconds: 360, pollIntervalMs: 1000, clock, logger: logger as never });
    await a.revoke('grant-1');
    await reader.sync();
    broken = true;
    await reader.sync();
    await reader.sync();
    assert.equal(reader.isRevoked('grant-1'), true);
    assert.equal(warnings.length, 1);
    broken = false;
    await a.revoke('grant-2');
    await reader.sync();
    assert.equal(reader.isRevoked('grant-2'), true);
    assert.equal(infos.length, 1, 'recovery logged');
  });
});
