/**
 * The client address behind proxies, with the X-Forwarded-For chains a client can forge: whatever it
 * writes into the header sits to the left of what the trusted proxies append, and must never count.
 */

import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { test } from 'node:test';
import { ErrorCode, hasErrorCode } from '../../../src/core/errors.ts';
import { clientAddressResolver } from '../../../src/http/client-address.ts';

function request(forwardedFor: string | undefined, socket = '10.0.0.9'): IncomingMessage {
  return { headers: forwardedFor === undefined ? {} : { 'x-forwarded-for': forwardedFor }, socket: { remoteAddress: socket } } as unknown as IncomingMessage;
}

test('without trustProxy (false, 0, empty list) the socket address counts, whatever X-Forwarded-For claims', () => {
  for (const trust of [false, 0, []]) assert.equal(clientAddressResolver(trust)(request('203.0.113.7')), '10.0.0.9', JSON.stringify(trust));
});

test('true: the entry the one proxy in front appended counts, not what the client put to its left', () => {
  const resolve = clientAddressResolver(true);
  assert.equal(resolve(request('198.51.100.1, 203.0.113.7')), '203.0.113.7');
  assert.equal(resolve(request('127.0.0.1,203.0.113.7')), '203.0.113.7', 'a client claiming to be loopback changes nothing');
  assert.equal(resolve(request('203.0.113.7')), '203.0.113.7');
  assert.equal(resolve(request(undefined)), '10.0.0.9');
  assert.equal(resolve(request(' , ')), '10.0.0.9', 'empty entries are no address');
});

test('a hop count takes the n-th entry from the right, never one further left', () => {
  const two = clientAddressResolver(2);
  // client forged "6.6.6.6"; proxy A appended the client's real address, proxy B appended A's.
  assert.equal(two(request('6.6.6.6, 203.0.113.7, 10.0.0.2')), '203.0.113.7');
  assert.equal(two(request('203.0.113.7, 10.0.0.2')), '203.0.113.7');
  // Fewer entries than hops (a request that reached the gateway by a shorter way): the leftmost there is.
  assert.equal(two(request('203.0.113.7')), '203.0.113.7');
  assert.equal(clientAddressResolver(1)(request('6.6.6.6, 203.0.113.7')), '203.0.113.7', '1 is the same as true');
});

test('a list trusts only hops whose address is on it: CIDR ranges, single addresses and named ranges', () => {
  const resolve = clientAddressResolver(['10.0.0.0/8', '192.0.2.10']);
  assert.equal(resolve(request('6.6.6.6, 203.0.113.7, 10.1.2.3')), '203.0.113.7', 'two trusted hops, then the client');
  assert.equal(resolve(request('6.6.6.6, 203.0.113.7', '192.0.2.10')), '203.0.113.7');
  assert.equal(resolve(request('203.0.113.7', '198.51.100.99')), '198.51.100.99', 'an untrusted peer is the client itself, its header ignored');
  // A client that forges a trusted proxy address still ends up as itself: the walk stops at its own entry.
  assert.equal(resolve(request('10.9.9.9, 203.0.113.7', '10.0.0.9')), '203.0.113.7');

  const loopback = clientAddressResolver(['loopback']);
  assert.equal(loopback(request('203.0.113.7', '127.0.0.1')), '203.0.113.7');
  assert.equal(loopback(request('203.0.113.7', '::ffff:127.0.0.1')), '203.0.113.7', 'an IPv4-mapped peer is its IPv4 address');
  assert.equal(loopback(request('203.0.113.7', '::1')), '203.0.113.7');
  assert.equal(loopback(request('203.0.113.7', '10.0.0.9')), '10.0.0.9');
  const local = clientAddressResolver(['uniquelocal', 'linklocal']);
  assert.equal(local(request('2001:db8::5, fd00::1', 'fe80::1')), '2001:db8::5');
});

test('a bad trustProxy fails when the resolver is built, with its code', () => {
  for (const bad of [['not-an-address'], ['10.0.0.0/99'], -1, 1.5]) {
    assert.throws(
      () => clientAddressResolver(bad as never),
      (error: unknown) => hasErrorCode(error, ErrorCode.HTTP_TRUST_PROXY_INVALID),
      JSON.stringify(bad),
    );
  }
});
