/**
 * The one address grouping behind every per-address limit (registration rate limits and the local
 * sign-in lockout use it alike).
 */

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { addressGroup, UNKNOWN_ADDRESS_GROUP } from '../../../src/policy/address-group.ts';
import { rateLimitWindow } from '../../../src/policy/rate-limit.ts';

test('IPv4 counts as itself', () => {
  assert.equal(addressGroup('203.0.113.7'), '203.0.113.7');
  assert.equal(addressGroup(' 203.0.113.7 '), '203.0.113.7');
});

test('IPv4-mapped IPv6 counts as its IPv4 address, however it is spelled', () => {
  for (const spelling of [
    '::ffff:203.0.113.5',
    '::FFFF:203.0.113.5',
    '0:0:0:0:0:ffff:203.0.113.5',
    '::ffff:cb00:7105',
    '[::ffff:203.0.113.5]',
    '::ffff:203.0.113.5%eth0',
  ]) {
    assert.equal(addressGroup(spelling), '203.0.113.5', spelling);
  }
});

test('other IPv6 counts by its /64, whatever the spelling of the prefix', () => {
  assert.equal(addressGroup('2001:db8:1:2:aaaa:bbbb:cccc:dddd'), '2001:db8:1:2::/64');
  assert.equal(addressGroup('2001:db8:1:2::1'), '2001:db8:1:2::/64', 'every address of a /64 counts as one');
  assert.equal(addressGroup('2001:DB8:0001:0002::ffff'), '2001:db8:1:2::/64', 'case and leading zeros do not make a new group');
  assert.equal(addressGroup('2001:db8::1'), '2001:db8:0:0::/64');
  assert.equal(addressGroup('2001:db8:1:3::'), '2001:db8:1:3::/64');
  assert.equal(addressGroup('[2001:db8:1:3::9]'), '2001:db8:1:3::/64');
  assert.equal(addressGroup('::1'), '0:0:0:0::/64');
  assert.equal(addressGroup('::'), '0:0:0:0::/64');
  assert.equal(addressGroup('64:ff9b::203.0.113.5'), '64:ff9b:0:0::/64', 'a dotted tail outside ::ffff:0:0/96 is just IPv6');
  assert.equal(addressGroup('::ffff:0:203.0.113.5'), '0:0:0:0::/64', 'SIIT (::ffff:0:0:0/96) is not the mapped range');
});

test('a zone id does not change the group', () => {
  assert.equal(addressGroup('fe80::1%eth0'), 'fe80:0:0:0::/64');
  assert.equal(addressGroup('fe80::2%25en0'), 'fe80:0:0:0::/64');
});

test('garbage and absent addresses share one group', () => {
  for (const garbage of [undefined, '', 'not an address', '203.0.113', '203.0.113.256', '2001:db8::1::2', ':::', '[203.0.113.7', '::ffff:999.0.0.1']) {
    assert.equal(addressGroup(garbage), UNKNOWN_ADDRESS_GROUP, String(garbage));
  }
});

test('the rate-limit counter key is the group: one /64 shares one counter', () => {
  const rule = { limit: 3, windowSeconds: 60 };
  const now = 1_700_000_040_000;
  assert.equal(rateLimitWindow('register', '2001:db8:1:2::1', rule, now).key, rateLimitWindow('register', '2001:db8:1:2::9', rule, now).key);
  assert.equal(rateLimitWindow('register', '::ffff:203.0.113.5', rule, now).key, rateLimitWindow('register', '203.0.113.5', rule, now).key);
});
