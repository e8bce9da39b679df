/** The signing-key lifecycle as pure functions of the stored list and the time (src/authorization/signing-keys.ts). */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { RELOAD_INTERVAL_MS, UNKNOWN_KID_RELOAD_MS } from '../../../src/authorization/signing-key-ring.ts';
import {
  JWKS_MAX_AGE_SECONDS,
  PRE_PUBLICATION_MS,
  rotationDue,
  type SigningKeyEntry,
  signingEntriesFrom,
  signingKeyState,
  withNextKey,
} from '../../../src/authorization/signing-keys.ts';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const policy = { rotationPeriodMs: 30 * DAY, prePublicationMs: HOUR, retentionMs: 2 * HOUR };

function entry(kid: string, activatesAt: number, createdAt = activatesAt - HOUR): SigningKeyEntry {
  return { jwk: { kty: 'EC', crv: 'P-256', x: kid, y: kid, d: `private-${kid}`, kid, alg: 'ES256', use: 'sig' }, createdAt, activatesAt };
}

const kids = (entries: readonly SigningKeyEntry[]) => entries.map((item) => item.jwk.kid);

describe('signing-key lifecycle', () => {
  const start = 1_000 * DAY;
  const list = [entry('old', start), entry('new', start + 30 * DAY)];

  test('published before it signs, signs from its activation, verifies only until the retention ends', () => {
    const ahead = signingKeyState(list, start + 30 * DAY - 1, policy.retentionMs);
    assert.equal(ahead.active.jwk.kid, 'old');
    assert.deepEqual(kids(ahead.published), ['old', 'new']);
    assert.equal(ahead.pending?.jwk.kid, 'new');
    assert.equal(ahead.nextChangeAt, start + 30 * DAY, 'the activation is the next change');

    const switched = signingKeyState(list, start + 30 * DAY, policy.retentionMs);
    assert.equal(switched.active.jwk.kid, 'new');
    assert.deepEqual(kids(switched.published), ['new', 'old'], 'active first, the retired key after it');
    assert.equal(switched.pending, undefined);
    assert.equal(switched.nextChangeAt, start + 30 * DAY + policy.retentionMs, 'the removal is the next change');

    const lastMoment = signingKeyState(list, start + 30 * DAY + policy.retentionMs - 1, policy.retentionMs);
    assert.deepEqual(kids(lastMoment.published), ['new', 'old']);
    const removed = signingKeyState(list, start + 30 * DAY + policy.retentionMs, policy.retentionMs);
    assert.deepEqual(kids(removed.published), ['new']);
    assert.equal(removed.nextChangeAt, Number.POSITIVE_INFINITY);
  });

  test('a clock set back before every activation keeps the earliest key signing rather than none', () => {
    assert.equal(signingKeyState(list, start - DAY, policy.retentionMs).active.jwk.kid, 'old');
  });

  test('an empty list is a programming error, not a state', () => {
    assert.throws(() => signingKeyState([], start, policy.retentionMs), RangeError);
  });

  test('the rotation is due one pre-publication time before the period ends, never while a key waits, never when off', () => {
    const single = [entry('only', start)];
    assert.equal(rotationDue(single, start + 30 * DAY - HOUR - 1, policy), false);
    assert.equal(rotationDue(single, start + 30 * DAY - HOUR, policy), true);
    assert.equal(rotationDue(list, start + 30 * DAY - 1, policy), false, 'a next key is already waiting');
    assert.equal(rotationDue(single, start + 365 * DAY, { ...policy, rotationPeriodMs: 0 }), false, 'scheduled rotation off');
  });

  test('adding the next key drops the keys that have left the JWKS, and the new one waits the pre-publication time', () => {
    const now = start + 30 * DAY + policy.retentionMs + 1;
    const next = withNextKey(list, { kid: 'next' }, now, policy);
    assert.deepEqual(kids(next), ['new', 'next']);
    assert.deepEqual({ createdAt: next[1]!.createdAt, activatesAt: next[1]!.activatesAt }, { createdAt: now, activatesAt: now + HOUR });
  });

  test('records written before rotation existed (bare JWKs, the first signing) read as keys active since the first start', () => {
    const legacy = signingEntriesFrom([{ kid: 'a', kty: 'EC' }]);
    assert.deepEqual(legacy, [{ jwk: { kid: 'a', kty: 'EC' }, createdAt: 0, activatesAt: 0 }]);
    assert.equal(rotationDue(legacy, Date.now(), policy), true, 'a key never rotated is rotated at the first chance');
    const current = signingEntriesFrom([list[0]]);
    assert.deepEqual(current, [list[0]], 'entries pass through');
  });

  test('timing: a new key is published longer than a cached JWKS lives and a replica waits between reads', () => {
    assert.ok(PRE_PUBLICATION_MS >= 2 * (JWKS_MAX_AGE_SECONDS * 1000 + RELOAD_INTERVAL_MS));
    assert.ok(UNKNOWN_KID_RELOAD_MS < RELOAD_INTERVAL_MS);
  });
});
