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

test('secrets in request headers one level down, in child bindings and in an error are redacted; the logged object is left as it was', () => {
  const { lines, logger } = capture();
  const logged = { req: { method: 'POST', headers: { authorization: 'Bearer h1', 'set-cookie': 'sid=h2' } }, token: 'h3' };
  logger.child({ refreshToken: 'h4' }).info(logged, 'request');
  logger.child({ service: 'x' }).child({ idToken: 'h7' }).info('grandchild');
  logger.error({ err: Object.assign(new Error('refused'), { accessToken: 'h5', code: 'E_X' }) }, 'failed');
  logger.warn({ cause: Object.assign(new Error('other key'), { password: 'h6' }) }, 'failed');
  const text = JSON.stringify(lines);
  for (const secret of ['h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'h7']) assert.ok(!text.includes(`"${secret}`) && !text.includes(`=${secret}`), secret);
  assert.equal((lines[0]?.req as { method?: string } | undefined)?.method, 'POST', 'the rest is kept');
  assert.equal((lines[2]?.err as { message?: string } | undefined)?.message, 'refused');
  assert.equal((lines[2]?.err as { code?: string } | undefined)?.code, 'E_X');
  assert.equal(logged.req.headers.authorization, 'Bearer h1', "the caller's object is not changed");
  assert.equal(logged.token, 'h3');
});
