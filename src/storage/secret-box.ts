/**
 * Encryption of secrets at rest (IdP tokens and the like): AES-256-GCM (NIST SP 800-38D) with a
 * random 96-bit IV per message, the IV size GCM is specified for.
 *
 * Sealed form: `v1.<keyId>.<iv>.<ciphertext>.<tag>`, base64url parts (RFC 4648 §5), so it is one opaque
 * string that fits a JSON field. `keyId` names the key that sealed it, which is what makes rotation work:
 * the first configured key seals, every configured key opens, and `needsRotation` finds values to re-seal.
 *
 * The version and key id are authenticated together with the caller's associated data, so no part of the
 * sealed string can be changed without `open` failing.
 */
import { createCipheriv, createDecipheriv, createHmac, createSecretKey, type KeyObject, randomBytes } from 'node:crypto';
import { link, mkdir, readFile, stat, unlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { GatewayConfig } from '../config/schema.ts';
import { ErrorCode, GatewayError } from '../core/errors.ts';

const VERSION = 'v1';
const ALGORITHM = 'aes-256-gcm';
const KEY_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const BASE64URL = /^[A-Za-z0-9_-]*$/;

/** Why a sealed value could not be opened; the error's `code` is ERR_SECRET_BOX_OPEN_FAILED for all. */
export type SecretBoxFailure =
  | 'malformed' // not a sealed string this version understands
  | 'unknown_key' // sealed with a key that is not configured (any more)
  | 'auth_failed'; // tampered with, or opened with different associated data

/**
 * A sealed value that cannot be opened. One code, because every caller reacts the same way (the secret
 * is unusable); `reason` tells an operator reading logs whether a key went missing or data was altered.
 * Messages name the failure and at most the key id; never the plaintext, nor the sealed value.
 */
export class SecretBoxError extends GatewayError {
  readonly reason: SecretBoxFailure;
  constructor(reason: SecretBoxFailure, message: string) {
    super(ErrorCode.SECRET_BOX_OPEN_FAILED, message);
    this.name = 'SecretBoxError';
    this.reason = reason;
  }
}

interface Sealed {
  keyId: string;
  iv: Buffer;
  ciphertext: Buffer;
  tag: Buffer;
}

export class SecretBox {
  /**
   * KeyObjects, made once: given a raw Buffer, createCipheriv imports the key again on every call,
   * which cost about 15 µs of the 25 µs a seal took (docs/performance.md).
   */
  readonly #keys = new Map<string, KeyObject>();
  readonly #currentKeyId: string;

  /** `keys[0]` seals; all of them open. Each key is 32 random bytes. */
  constructor(keys: Buffer[]) {
    if (keys.length === 0) throw new GatewayError(ErrorCode.SECRET_BOX_KEY_INVALID, 'SecretBox needs at least one key');
    for (const [index, key] of keys.entries()) {
      if (key.length !== KEY_BYTES)
        throw new GatewayError(ErrorCode.SECRET_BOX_KEY_INVALID, `encryption key #${index + 1} is ${key.length} bytes; AES-256 needs ${KEY_BYTES}`);
      const id = keyIdOf(key);
      const existing = this.#keys.get(id);
      // Listing the same key twice is harmless; two keys sharing an id would make opening ambiguous.
      if (existing && !existing.equals(createSecretKey(key)))
        throw new GatewayError(ErrorCode.SECRET_BOX_KEY_INVALID, `encryption keys #${index + 1} and another share key id ${id}; generate a new key`);
      if (!existing) this.#keys.set(id, createSecretKey(Buffer.from(key)));
    }
    this.#currentKeyId = keyIdOf(keys[0]!);
  }

  /** Id of the key that seals; handy in logs about rotation. */
  get currentKeyId(): string {
    return this.#currentKeyId;
  }

  /**
   * `associatedData` binds the ciphertext to its context (for example the user id of the record holding
   * it): it is authenticated but not stored, and `open` must be given the same value. Without it a sealed
   * value copied into another user's record would open there.
   */
  seal(plaintext: string, associatedData?: string): string {
    const key = this.#keys.get(this.#currentKeyId)!;
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv(ALGORITHM, key, iv, { authTagLength: TAG_BYTES });
    cipher.setAAD(aadFor(this.#currentKeyId, associatedData));
    const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    const tag = cipher.getAuthTag();
    return [VERSION, this.#currentKeyId, iv, ciphertext, tag].map((part) => (typeof part === 'string' ? part : part.toString('base64url'))).join('.');
  }

  open(sealed: string, associatedData?: string): string {
    const { keyId, iv, ciphertext, tag } = parse(sealed);
    const key = this.#keys.get(keyId);
    if (!key) {
      throw new SecretBoxError('unknown_key', `secret was sealed with key ${keyId}, which is not among the configured encryption keys`);
    }
    // authTagLength pins the tag size, so a truncated tag cannot be accepted.
    const decipher = createDecipheriv(ALGORITHM, key, iv, { authTagLength: TAG_BYTES });
    decipher.setAAD(aadFor(keyId, associatedData));
    decipher.setAuthTag(tag);
    let plaintext: Buffer;
    try {
      plaintext = Buffer.concat([decipher.update(ciphertext), decipher.final()]);
    } catch {
      throw new SecretBoxError('auth_failed', 'secret failed authentication: it was altered, or belongs to another record');
    }
    return plaintext.toString('utf8');
  }

  sealJson(value: unknown, associatedData?: string): string {
    const text = JSON.stringify(value);
    if (typeof text !== 'string') throw new TypeError('sealJson needs a JSON-serialisable value');
    return this.seal(text, associatedData);
  }

  openJson<T = unknown>(sealed: string, associatedData?: string): T {
    return JSON.parse(this.open(sealed, associatedData)) as T;
  }

  /**
   * True when `sealed` was not sealed with the current key and should be re-sealed (open, then seal).
   * Throws a SecretBoxError (reason `malformed`) for a string that is not a sealed secret at all.
   */
  needsRotation(sealed: string): boolean {
    return parse(sealed).keyId !== this.#currentKeyId;
  }
}

/**
 * A short public name for a key: 48 bits of HMAC-SHA-256 keyed by the key itself. Being a PRF output it
 * says nothing about the key, and 48 bits is plenty to tell a handful of configured keys apart.
 */
function keyIdOf(key: Buffer): string {
  return createHmac('sha256', key).update('mcp-oauth-gateway secret-box key id').digest().subarray(0, 6).toString('base64url');
}

/** The header is authenticated too. keyId has a fixed length and no '.', so the split is unambiguous. */
function aadFor(keyId: string, associatedData: string | undefined): Buffer {
  return Buffer.from(`${VERSION}.${keyId}.${associatedData ?? ''}`, 'utf8');
}

function parse(sealed: string): Sealed {
  const parts = typeof sealed === 'string' ? sealed.split('.') : [];
  const [version, keyId, iv, ciphertext, tag] = parts;
  if (parts.length !== 5 || version !== VERSION || keyId === undefined || iv === undefined || ciphertext === undefined || tag === undefined) {
    throw new SecretBoxError('malformed', `not a sealed secret (expected ${VERSION}.<keyId>.<iv>.<ciphertext>.<tag>)`);
  }
  if (!parts.every((part) => BASE64URL.test(part))) {
    throw new SecretBoxError('malformed', 'sealed secret has characters outside base64url');
  }
  const decoded = { keyId, iv: Buffer.from(iv, 'base64url'), ciphertext: Buffer.from(ciphertext, 'base64url'), tag: Buffer.from(tag, 'base64url') };
  if (decoded.iv.length !== IV_BYTES || decoded.tag.length !== TAG_BYTES) {
    throw new SecretBoxError('malformed', 'sealed secret has a wrong IV or tag length');
  }
  return decoded;
}

/**
 * The keys for a SecretBox: `secrets.encryptionKeys` when configured; otherwise one generated key kept in
 * `<dataDir>/encryption.key`, created on first start and reused after. A generated key sits next to the
 * data it protects, so it only guards against leaks of the data alone (a copied database, a backup); the
 * warning says so, and configuring keys from a secret store is the production setup.
 */
export async function loadEncryptionKeys(config: GatewayConfig, log?: { warn(msg: string): void }): Promise<Buffer[]> {
  if (config.secrets.encryptionKeys.length > 0) {
    return config.secrets.encryptionKeys.map((encoded, index) => {
      const key = Buffer.from(encoded, 'base64');
      if (key.length !== KEY_BYTES)
        throw new GatewayError(ErrorCode.SECRET_BOX_KEY_INVALID, `secrets.encryptionKeys[${index}] must be ${KEY_BYTES} bytes, base64-encoded`);
      return key;
    });
  }
  const path = join(config.dataDir, 'encryption.key');
  const created = await createKeyFileOnce(path);
  const key = await readKeyFile(path);
  if ((await stat(path)).mode & 0o077 && process.platform !== 'win32') {
    log?.warn(`${path} is readable by other users; restrict it with: chmod 600 ${path}`);
  }
  log?.warn(
    created
      ? `no secrets.encryptionKeys configured: generated an encryption key in ${path}. Back it up, or configure secrets.encryptionKeys.`
      : `no secrets.encryptionKeys configured: using the generated encryption key in ${path}.`,
  );
  return [key];
}

/**
 * Writes a new key unless the file exists. The key is written to a private temporary file first and then
 * hard-linked into place: link() fails if the name exists, so two processes starting together cannot
 * overwrite each other's key, and no reader can ever see a half-written file.
 */
async function createKeyFileOnce(path: string): Promise<boolean> {
  try {
    await stat(path);
    return false;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const temporary = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  await writeFile(temporary, `${randomBytes(KEY_BYTES).toString('base64')}\n`, { mode: 0o600, flag: 'wx' });
  try {
    await link(temporary, path);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false; // another process won the race
    throw error;
  } finally {
    await unlink(temporary);
  }
}

async function readKeyFile(path: string): Promise<Buffer> {
  const key = Buffer.from((await readFile(path, 'utf8')).trim(), 'base64');
  if (key.length !== KEY_BYTES) throw new GatewayError(ErrorCode.SECRET_BOX_KEY_INVALID, `${path} does not hold a ${KEY_BYTES}-byte base64 key`);
  return key;
}
