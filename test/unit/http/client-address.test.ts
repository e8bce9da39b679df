import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { clientAddressResolver } from '../../../src/http/client-address.ts';

function request(forwardedFor: string | undefined): IncomingMessage {
  return { headers: forwardedFor === undefined ? {} : { 'x-forwarded-for': forwardedFor }, socket: { remoteAddress: '10.0.0.9' } } as unknown as IncomingMessage;
}

test('without trustProxy the socket address counts, whatever X-Forwarded-For claims', () => {
  assert.equal(clientAddressResolver(false)(request('203.0.113.7')), '10.0.0.9');
});

test('with trustProxy the entry our proxy appended counts, not what the client put to its left', () => {
  const resolve = clientAddressResolver(true);
  assert.equal(resolve(request('198.51.100.1, 203.0.113.7')), '203.0.113.7');
  assert.equal(resolve(request('203.0.113.7')), '203.0.113.7');
  assert.equal(resolve(request(undefined)), '10.0.0.9');
  assert.equal(resolve(request(' , ')), '10.0.0.9');
});
