/**
 * Session owners across replicas: two SessionOwners sharing one storage stand for two gateway
 * instances; the storage is the real memory backend with its TTLs, time moved by a TestClock.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createLogger } from '../../../src/observability/logger.ts';
import { SessionOwners } from '../../../src/resource-server/session-owners.ts';
import { MemoryStorage } from '../../../src/storage/memory.ts';
import { NS } from '../../../src/storage/records.ts';
import { TestClock } from '../../support/clock.ts';

const logger = createLogger('silent');
const alice = SessionOwners.ownerOf('corp:alice', 'client-1');
const aliceOtherClient = SessionOwners.ownerOf('corp:alice', 'client-2');
const bob = SessionOwners.ownerOf('corp:bob', 'client-1');

async function settled(): Promise<void> {
  await new Promise((resolve) => setImmediate(resolve));
}

describe('session owners', () => {
  test('the owner passes, another user or client is a stranger, an unseen session is unknown (synchronously, no storage)', () => {
    const owners = new SessionOwners({ clock: new TestClock(), logger });
    owners.record('tools', 's1', alice);
    assert.equal(owners.check('tools', 's1', alice), 'owner');
    assert.equal(owners.check('tools', 's1', bob), 'stranger');
    assert.equal(owners.check('tools', 's1', aliceOtherClient), 'stranger');
    assert.equal(owners.check('other-server', 's1', bob), 'unknown', 'sessions are per server');
    assert.equal(owners.check('tools', 's2', bob), 'unknown');
  });

  test('a session is never handed to a second owner, even if the upstream repeats its id', () => {
    const owners = new SessionOwners({ clock: new TestClock(), logger });
    owners.record('tools', 's1', alice);
    owners.record('tools', 's1', bob);
    assert.equal(owners.check('tools', 's1', bob), 'stranger');
  });

  test('another replica learns the owner from storage once, then answers from its own map', async () => {
    const clock = new TestClock();
    const storage = new MemoryStorage({ clock });
    const first = new SessionOwners({ storage, clock, logger });
    const second = new SessionOwners({ storage, clock, logger });
    first.record('tools', 'shared', alice);
    await settled();
    const verdict = second.check('tools', 'shared', bob);
    assert.ok(verdict instanceof Promise, 'a session this replica has not seen is read from storage');
    assert.equal(await verdict, 'stranger');
    assert.equal(second.check('tools', 'shared', alice), 'owner', 'then known locally: no promise');
  });

  test('storage holds a digest of the session id, never the id, and forgets it after the TTL', async () => {
    const clock = new TestClock();
    const storage = new MemoryStorage({ clock });
    const owners = new SessionOwners({ storage, clock, logger, ttlSeconds: 60 });
    owners.record('tools', 'secret-session-id', alice);
    await settled();
    const stored = await storage.list<string>(NS.sessionOwners);
    assert.deepEqual(
      stored.map((entry) => entry.value),
      [alice],
    );
    assert.ok(!stored[0]?.key.includes('secret-session-id'), 'keyed by a digest');
    assert.equal(await storage.get(NS.sessionOwners, 'secret-session-id'), undefined);
    clock.advance(61_000);
    const fresh = new SessionOwners({ storage, clock, logger });
    assert.equal(await fresh.check('tools', 'secret-session-id', bob), 'unknown');
  });

  test('a session in use is written again at half-life, so it outlives the first TTL', async () => {
    const clock = new TestClock();
    const storage = new MemoryStorage({ clock });
    const owners = new SessionOwners({ storage, clock, logger, ttlSeconds: 60 });
    owners.record('tools', 's', alice);
    clock.advance(40_000);
    assert.equal(owners.check('tools', 's', alice), 'owner');
    await settled();
    clock.advance(40_000);
    const other = new SessionOwners({ storage, clock, logger });
    assert.equal(await other.check('tools', 's', bob), 'stranger');
  });

  test('the local map is bounded; a dropped entry is read back from storage', async () => {
    const clock = new TestClock();
    const storage = new MemoryStorage({ clock });
    const owners = new SessionOwners({ storage, clock, logger, localLimit: 2 });
    owners.record('tools', 'a', alice);
    owners.record('tools', 'b', alice);
    owners.record('tools', 'c', alice);
    await settled();
    const verdict = owners.check('tools', 'a', bob);
    assert.ok(verdict instanceof Promise, 'the oldest entry left the map');
    assert.equal(await verdict, 'stranger');
  });
});
