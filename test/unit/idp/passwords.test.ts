/** Password hashing for local users: format, verification, and that no input makes verify throw. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { hashPassword, isPasswordHash, verifyPassword, verifyPasswordForUnknownUser } from '../../../src/idp/passwords.ts';

describe('hashPassword / verifyPassword', () => {
  test('produces scrypt$N$r$p$salt$hash with strong parameters and a fresh salt', async () => {
    const first = await hashPassword('correct horse battery staple');
    const second = await hashPassword('correct horse battery staple');
    const match = /^scrypt\$(\d+)\$(\d+)\$(\d+)\$([A-Za-z0-9+/]+=*)\$([A-Za-z0-9+/]+=*)$/.exec(first);
    assert.ok(match, first);
    assert.ok(Number(match[1]) >= 2 ** 15);
    assert.ok(Number(match[2]) >= 8);
    assert.equal(Buffer.from(match[4]!, 'base64').length, 16);
    assert.equal(Buffer.from(match[5]!, 'base64').length, 32);
    assert.notEqual(first, second);
    assert.ok(isPasswordHash(first));
  });

  test('accepts the right password and rejects others', async () => {
    const hash = await hashPassword('s3cret-Pass');
    assert.equal(await verifyPassword('s3cret-Pass', hash), true);
    assert.equal(await verifyPassword('s3cret-pass', hash), false);
    assert.equal(await verifyPassword('s3cret-Pass ', hash), false);
    assert.equal(await verifyPassword('', hash), false);
  });

  test('composed and decomposed Unicode are the same password', async () => {
    const hash = await hashPassword('caf\u00e9-\u00fcber');
    assert.equal(await verifyPassword('cafe\u0301-u\u0308ber', hash), true);
  });

  test('an empty password cannot be hashed', async () => {
    await assert.rejects(hashPassword(''), TypeError);
  });

  test('malformed hashes and bad input are "no", never an exception', async () => {
    const good = await hashPassword('pw-123456');
    const [, n, r, p, salt, hash] = good.split('$');
    const malformed = [
      '',
      'scrypt$',
      'plain-text-password',
      `bcrypt$${n}$${r}$${p}$${salt}$${hash}`,
      `scrypt$${n}$${r}$${p}$${salt}`,
      `scrypt$${n}$${r}$${p}$${salt}$${hash}$extra`,
      `scrypt$1000$${r}$${p}$${salt}$${hash}`, // N not a power of two
      `scrypt$${2 ** 30}$${r}$${p}$${salt}$${hash}`, // memory bomb
      `scrypt$${n}$${r}$999$${salt}$${hash}`, // CPU bomb
      `scrypt$${n}$0$${p}$${salt}$${hash}`,
      `scrypt$-2$${r}$${p}$${salt}$${hash}`,
      `scrypt$${n}$${r}$${p}$!!!$${hash}`,
      `scrypt$${n}$${r}$${p}$${salt}$AAAA`, // hash too short
      `scrypt$${n}$${r}$${p}$${salt}$${hash}`.replace(/.$/, '?'),
    ];
    for (const candidate of malformed) {
      assert.equal(isPasswordHash(candidate), false, candidate);
      assert.equal(await verifyPassword('pw-123456', candidate), false, candidate);
    }
    assert.equal(await verifyPassword(undefined as unknown as string, good), false);
    assert.equal(await verifyPassword('pw-123456', null as unknown as string), false);
    assert.equal(await verifyPassword({} as unknown as string, good), false);
  });

  test('the unknown-user check always says no and costs about as much as a real one', async () => {
    const hash = await hashPassword('pw-123456');
    const time = async (check: () => Promise<boolean>): Promise<number> => {
      const samples: number[] = [];
      for (let index = 0; index < 3; index++) {
        const start = performance.now();
        await check();
        samples.push(performance.now() - start);
      }
      return samples.sort((a, b) => a - b)[1]!;
    };
    assert.equal(await verifyPasswordForUnknownUser('pw-123456'), false);
    assert.equal(await verifyPasswordForUnknownUser(undefined as unknown as string), false);
    const real = await time(() => verifyPassword('wrong', hash));
    const dummy = await time(() => verifyPasswordForUnknownUser('wrong'));
    // Loose bounds: the point is "same order of magnitude", not a benchmark.
    assert.ok(dummy > real * 0.3 && dummy < real * 3, `real ${real.toFixed(1)} ms, dummy ${dummy.toFixed(1)} ms`);
  });
});
