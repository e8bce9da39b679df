import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { createLogger } from '../../../src/observability/logger.ts';

function capture() {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(line));
      done();
    },
  });
  return { lines, logger: createLogger('info', sink) };
}

test('secrets are redacted wherever they appear', () => {
  const { lines, logger } = capture();
  logger.info(
    { authorization: 'Bearer abc', headers: { authorization: 'Bearer abc', cookie: 'a=b' }, clientSecret: 's3cret', upstream: { refreshToken: 'rt' } },
    'secrets',
  );
  const text = JSON.stringify(lines);
  for (const secret of ['Bearer abc', 'a=b', 's3cret', '"rt"']) assert.ok(!text.includes(secret), secret);
});

test('error codes stay readable: operators need them to see why an upstream failed', () => {
  const { lines, logger } = capture();
  logger.warn({ upstream: 'tools', code: 'ECONNREFUSED' }, 'upstream unavailable');
  logger.error({ err: Object.assign(new Error('boom'), { code: 'UND_ERR_HEADERS_TIMEOUT' }) }, 'failed');
  assert.equal(lines[0]?.code, 'ECONNREFUSED');
  assert.equal((lines[1]?.err as { code?: string } | undefined)?.code, 'UND_ERR_HEADERS_TIMEOUT');
});
