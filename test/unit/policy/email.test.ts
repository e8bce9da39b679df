/**
 * Email and domain normalisation for allow-lists: the domain is the part after the last `@`, compared
 * in A-label form; anything that is not a plain host name is not a domain.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { normaliseDomain, normaliseEmail } from '../../../src/policy/email.ts';

describe('normaliseDomain', () => {
  test('lowercases and converts international names to A-labels', () => {
    assert.equal(normaliseDomain('Example.COM'), 'example.com');
    assert.equal(normaliseDomain('BÜCHER.example'), 'xn--bcher-kva.example');
    assert.equal(normaliseDomain('xn--bcher-kva.example'), 'xn--bcher-kva.example');
    assert.equal(normaliseDomain('bu\u0308cher.example'), 'xn--bcher-kva.example', 'NFD input folds to the same name');
  });

  test('refuses what is not a plain host name', () => {
    for (const value of [
      '',
      'example.com.',
      '.example.com',
      'a..b',
      '*.example.com',
      'ex%61mple.com',
      'a_b.com',
      '[127.0.0.1]',
      'localhost',
      '-a.com',
      'a-.com',
      'exa mple.com',
      'a@b.com',
      'example.com/x',
      `${'a'.repeat(64)}.com`,
    ]) {
      assert.equal(normaliseDomain(value), undefined, JSON.stringify(value));
    }
  });
});

describe('normaliseEmail', () => {
  test('the domain is the part after the last @', () => {
    assert.deepEqual(normaliseEmail('a@b.com@evil.com'), { address: 'a@b.com@evil.com', domain: 'evil.com' });
    assert.deepEqual(normaliseEmail('Alice.Smith@Example.COM'), { address: 'alice.smith@example.com', domain: 'example.com' });
    assert.deepEqual(normaliseEmail('jörg@BÜCHER.example'), { address: 'jörg@xn--bcher-kva.example', domain: 'xn--bcher-kva.example' });
  });

  test('refuses addresses without a usable local part or domain', () => {
    for (const value of [
      '',
      'alice',
      '@example.com',
      'alice@',
      'alice@example.com.',
      'alice@[10.0.0.1]',
      'al ice@example.com',
      'alice\n@example.com',
      'alice@example.com\u0000',
    ]) {
      assert.equal(normaliseEmail(value), undefined, JSON.stringify(value));
    }
  });
});
