/**
 * A client in use is kept alive (registration hygiene, src/authorization/client-keep-alive.ts): a
 * login or a refresh extends its expiry to the idle TTL, but at most once a day per client, not with
 * a storage write on every refresh. Through the adapter oidc-provider uses, on real storage.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import type { Adapter } from 'oidc-provider';
import { createAdapterFactory } from '../../../src/authorization/adapter.ts';
import { MemoryStorage } from '../../../src/storage/memory.ts';
import { SecretBox } from '../../../src/storage/secret-box.ts';
import type { Storage } from '../../../src/storage/types.ts';
import { TestClock } from '../../support/clock.ts';

const DAY = 86_400;
const POLICY = { unusedClientTtl: DAY, idleClientTtl: 90 * DAY };

/** The storage, with the client expiry extensions it received counted. */
function countingExpires(storage: Storage): { storage: Storage; extensions: () => number } {
  let count = 0;
  const counted = new Proxy(storage, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver);
      if (property !== 'expire' || typeof value !== 'function') return typeof value === 'function' ? value.bind(target) : value;
      return (namespace: string, key: string, ttl: number | undefined) => {
        if (namespace === 'oidc:Client') count++;
        return value.call(target, namespace, key, ttl);
      };
    },
  });
  return { storage: counted, extensions: () => count };
}

function setup() {
  const clock = new TestClock();
  const memory = new MemoryStorage({ clock });
  const { storage, extensions } = countingExpires(memory);
  const Adapter = createAdapterFactory(storage, POLICY, new SecretBox([randomBytes(32)]), undefined, clock);
  const adapter = (model: string): Adapter => new Adapter(model);
  return { clock, memory, extensions, adapter };
}

async function refresh(adapter: (model: string) => Adapter, clientId: string): Promise<void> {
  const token = randomBytes(32).toString('base64url');
  await adapter('RefreshToken').upsert(token, { jti: token, kind: 'RefreshToken', grantId: 'grant-1', clientId }, 3600);
}

describe('a client in use is kept alive, once a day', () => {
  test('the first refresh extends the client to the idle TTL; later ones within a day write nothing', async () => {
    const { clock, memory, extensions, adapter } = setup();
    await adapter('Client').upsert('client-a', { client_id: 'client-a', redirect_uris: ['http://127.0.0.1/cb'] });

    await refresh(adapter, 'client-a');
    assert.equal(extensions(), 1);
    for (let i = 0; i < 5; i++) await refresh(adapter, 'client-a');
    assert.equal(extensions(), 1, 'no write per refresh');

    // Past the unused-client TTL it was registered with: it lives, as it was extended.
    clock.advance(2 * DAY * 1000);
    assert.ok(await memory.get('oidc:Client', 'client-a'), 'kept past registration.unusedClientTtl');
    await refresh(adapter, 'client-a');
    assert.equal(extensions(), 2, 'extended again after a day');
  });

  test('a client used daily never expires; an idle one still does', async () => {
    const { clock, memory, adapter } = setup();
    await adapter('Client').upsert('in-use', { client_id: 'in-use', redirect_uris: ['http://127.0.0.1/cb'] });
    await adapter('Client').upsert('idle', { client_id: 'idle', redirect_uris: ['http://127.0.0.1/cb'] });
    await refresh(adapter, 'idle');
    for (let day = 0; day < 120; day++) {
      await refresh(adapter, 'in-use');
      clock.advance(DAY * 1000);
    }
    assert.ok(await memory.get('oidc:Client', 'in-use'), 'in use for 120 days, idle TTL 90 days');
    assert.equal(await memory.get('oidc:Client', 'idle'), undefined, 'unused for 120 days');
  });

  test('a client registered again is extended at its next use, not left at the unused TTL', async () => {
    const { clock, memory, extensions, adapter } = setup();
    const client = { client_id: 'client-b', redirect_uris: ['http://127.0.0.1/cb'] };
    await adapter('Client').upsert('client-b', client);
    await refresh(adapter, 'client-b');
    // Written again with the unused TTL (a day), then used: without the extension it would expire in a day.
    await adapter('Client').upsert('client-b', client);
    await refresh(adapter, 'client-b');
    assert.equal(extensions(), 2);
    clock.advance(2 * DAY * 1000);
    assert.ok(await memory.get('oidc:Client', 'client-b'));
  });

  test('an unknown client is not remembered: once it exists, its next use extends it', async () => {
    const { clock, memory, extensions, adapter } = setup();
    await refresh(adapter, 'late');
    assert.equal(extensions(), 1);
    await memory.set('oidc:Client', 'late', { client_id: 'late' }, DAY);
    await refresh(adapter, 'late');
    assert.equal(extensions(), 2);
    clock.advance(2 * DAY * 1000);
    assert.ok(await memory.get('oidc:Client', 'late'));
  });
});
