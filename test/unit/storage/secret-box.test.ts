import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { configSchema } from '../../../src/config/schema.ts';
import { ErrorCode } from '../../../src/core/errors.ts';
import { loadEncryptionKeys, SecretBox, SecretBoxError, type SecretBoxFailure } from '../../../src/storage/secret-box.ts';

const oldKey = randomBytes(32);
const newKey = randomBytes(32);

function assertSecretBoxError(action: () => unknown, reason: SecretBoxFailure, secret?: string): void {
  assert.throws(action, (error: unknown) => {
    assert.ok(error instanceof SecretBoxError);
    assert.equal(error.code, ErrorCode.SECRET_BOX_OPEN_FAILED);
    assert.equal(error.reason, reason);
    if (secret) assert.ok(!error.message.includes(secret), 'the error never carries the plaintext');
    return true;
  });
}

/** Flips one bit of one byte inside a base64url part of the sealed string. */
function tamper(sealed: string, partIndex: number): string {
  const parts = sealed.split('.');
  const bytes = Buffer.from(parts[partIndex]!, 'base64url');
  bytes[0] = bytes[0]! ^ 0x01;
  parts[partIndex] = bytes.toString('base64url');
  return parts.join('.');
}

describe('SecretBox', () => {
  const box = new SecretBox([oldKey]);

  test('round trip, with a fresh IV every time', () => {
    const plaintext = 'refresh-token-😀-ü';
    const sealed = box.seal(plaintext);
    assert.match(sealed, /^v1\.[A-Za-z0-9_-]{8}\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{22}$/);
    assert.ok(!sealed.includes(plaintext));
    assert.equal(box.open(sealed), plaintext);
    assert.notEqual(box.seal(plaintext), sealed);
    assert.equal(box.open(box.seal('')), '', 'empty plaintext works');
  });

  test('JSON helpers', () => {
    const value = { access_token: 'at', expires_at: 123, scopes: ['a', 'b'] };
    assert.deepEqual(box.openJson(box.sealJson(value, 'user:1'), 'user:1'), value);
  });

  test('any altered byte is detected', () => {
    const secret = 'hunter2-plaintext';
    const sealed = box.seal(secret, 'user:1');
    for (const part of [2, 3, 4]) {
      assertSecretBoxError(() => box.open(tamper(sealed, part), 'user:1'), 'auth_failed', secret);
    }
    const truncatedTag = sealed.slice(0, -2);
    assertSecretBoxError(() => box.open(truncatedTag, 'user:1'), 'malformed');
    for (const malformed of ['', 'nope', `v2${sealed.slice(2)}`, `${sealed}.extra`, sealed.replace(/\.[^.]+$/, '.!!!!')]) {
      assertSecretBoxError(() => box.open(malformed, 'user:1'), 'malformed');
    }
  });

  test('associated data binds the ciphertext to its record', () => {
    const sealed = box.seal('token', 'user:alice');
    assert.equal(box.open(sealed, 'user:alice'), 'token');
    assertSecretBoxError(() => box.open(sealed, 'user:mallory'), 'auth_failed', 'token');
    assertSecretBoxError(() => box.open(sealed), 'auth_failed');
    assertSecretBoxError(() => box.open(box.seal('token'), 'user:alice'), 'auth_failed');
  });

  test('rotation: the first key seals, every key opens', () => {
    const sealedWithOld = new SecretBox([oldKey]).seal('s', 'ad');
    const rotated = new SecretBox([newKey, oldKey]);
    assert.equal(rotated.open(sealedWithOld, 'ad'), 's');
    assert.equal(rotated.needsRotation(sealedWithOld), true);
    const resealed = rotated.seal(rotated.open(sealedWithOld, 'ad'), 'ad');
    assert.equal(rotated.needsRotation(resealed), false);
    assert.equal(resealed.split('.')[1], rotated.currentKeyId);
    assert.equal(new SecretBox([newKey]).open(resealed, 'ad'), 's', 'the old key can then be dropped');
  });

  test('a value sealed with an unknown key fails with a code', () => {
    const sealed = new SecretBox([newKey]).seal('hunter2-plaintext');
    assertSecretBoxError(() => new SecretBox([oldKey]).open(sealed), 'unknown_key', 'hunter2-plaintext');
    // Swapping in another configured key id is caught too: the key id is authenticated.
    const both = new SecretBox([oldKey, newKey]);
    const parts = both.seal('secret').split('.');
    parts[1] = new SecretBox([newKey]).currentKeyId;
    assertSecretBoxError(() => both.open(parts.join('.')), 'auth_failed');
  });

  test('rejects bad key sets', () => {
    const keyInvalid = { code: ErrorCode.SECRET_BOX_KEY_INVALID };
    assert.throws(() => new SecretBox([]), keyInvalid);
    assert.throws(() => new SecretBox([randomBytes(16)]), keyInvalid);
    assert.doesNotThrow(() => new SecretBox([oldKey, Buffer.from(oldKey)]), 'the same key twice is harmless');
  });
});

describe('loadEncryptionKeys', () => {
  let tempDir = '';
  before(async () => {
    tempDir = await mkdtemp(join(tmpdir(), 'secret-box-test-'));
  });
  after(async () => {
    await rm(tempDir, { recursive: true, force: true });
  });

  function collectWarnings(): { warn(msg: string): void; messages: string[] } {
    const messages: string[] = [];
    return { messages, warn: (msg) => messages.push(msg) };
  }

  test('uses configured keys, in order, and writes no file', async () => {
    const dataDir = join(tempDir, 'configured');
    const config = configSchema.parse({ dataDir, secrets: { encryptionKeys: [newKey.toString('base64'), oldKey.toString('base64')] } });
    const log = collectWarnings();
    const keys = await loadEncryptionKeys(config, log);
    assert.deepEqual(keys, [newKey, oldKey]);
    assert.deepEqual(log.messages, []);
    await assert.rejects(stat(dataDir), { code: 'ENOENT' });
  });

  test('refuses a configured key that is not 32 bytes', async () => {
    const config = configSchema.parse({ dataDir: join(tempDir, 'short-key') });
    const short = { ...config, secrets: { ...config.secrets, encryptionKeys: [randomBytes(16).toString('base64')] } };
    await assert.rejects(loadEncryptionKeys(short), { code: ErrorCode.SECRET_BOX_KEY_INVALID });
  });

  test('generates a key file once, owner-only, and reuses it', async () => {
    const dataDir = join(tempDir, 'generated', 'data');
    const config = configSchema.parse({ dataDir });
    const log = collectWarnings();
    const [first] = await loadEncryptionKeys(config, log);
    assert.equal(first?.length, 32);
    assert.match(log.messages.join('\n'), /generated an encryption key/);

    const path = join(dataDir, 'encryption.key');
    assert.equal(Buffer.from((await readFile(path, 'utf8')).trim(), 'base64').toString('hex'), first!.toString('hex'));
    if (process.platform !== 'win32') {
      assert.equal((await stat(path)).mode & 0o777, 0o600);
      assert.equal((await stat(dataDir)).mode & 0o777, 0o700);
    }

    const again = collectWarnings();
    const [second] = await loadEncryptionKeys(config, again);
    assert.ok(second?.equals(first!), 'the same key comes back');
    assert.match(again.messages.join('\n'), /using the generated encryption key/);
    assert.deepEqual(await readdir(dataDir), ['encryption.key'], 'no temporary files are left');
  });

  test('concurrent first starts agree on one key', async () => {
    const config = configSchema.parse({ dataDir: join(tempDir, 'race') });
    const results = await Promise.all(Array.from({ length: 5 }, () => loadEncryptionKeys(config)));
    for (const [key] of results) assert.ok(key?.equals(results[0]![0]!));
  });

  test('warns about a key file others can read, and rejects a corrupt one', {
    skip: process.platform === 'win32' ? 'POSIX file modes do not exist on Windows' : false,
  }, async () => {
    const dataDir = join(tempDir, 'loose');
    const config = configSchema.parse({ dataDir });
    await loadEncryptionKeys(config);
    const path = join(dataDir, 'encryption.key');
    await chmod(path, 0o644);
    const log = collectWarnings();
    await loadEncryptionKeys(config, log);
    assert.match(log.messages.join('\n'), /readable by other users/);

    await writeFile(path, 'too short');
    await assert.rejects(loadEncryptionKeys(config), { code: ErrorCode.SECRET_BOX_KEY_INVALID });
  });
});
