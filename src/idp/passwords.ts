/**
 * Password hashes for local users: scrypt (memory-hard, in node:crypto, no native addon), stored as
 *
 *   scrypt$<N>$<r>$<p>$<salt base64>$<hash base64>
 *
 * The parameters travel with the hash, so they can be raised later without invalidating old hashes.
 */
import { randomBytes, type ScryptOptions, scrypt as scryptCallback, timingSafeEqual } from 'node:crypto';

/** N = 2^15, r = 8, p = 1: OWASP's scrypt minimum; ~32 MiB and tens of milliseconds per check. */
const DEFAULT_PARAMS = { N: 2 ** 15, r: 8, p: 1 } as const;
const SALT_BYTES = 16;
const HASH_BYTES = 32;

/**
 * Bounds on parameters read from a hash. Hashes come from the config file (trusted, but possibly
 * mistyped or pasted from elsewhere); a huge N or p would make every sign-in attempt a memory or CPU
 * bomb, so anything outside these bounds is treated as malformed.
 */
const MAX_N = 2 ** 20;
const MAX_R = 32;
const MAX_P = 16;

function scrypt(password: string, salt: Buffer, keyLength: number, params: { N: number; r: number; p: number }): Promise<Buffer> {
  const options: ScryptOptions = {
    ...params,
    // scrypt needs 128 * N * r bytes; Node refuses anything above maxmem (default 32 MiB, which
    // N = 2^15, r = 8 exactly reaches), so allow the need plus headroom.
    maxmem: 128 * params.N * params.r + 16 * 1024 * 1024,
  };
  return new Promise((resolve, reject) => {
    // NFC: the same password typed on different systems can arrive composed or decomposed.
    scryptCallback(password.normalize('NFC'), salt, keyLength, options, (error, key) => (error ? reject(error) : resolve(key)));
  });
}

export async function hashPassword(password: string): Promise<string> {
  if (typeof password !== 'string' || password.length === 0) throw new TypeError('password must be a non-empty string');
  const salt = randomBytes(SALT_BYTES);
  const hash = await scrypt(password, salt, HASH_BYTES, DEFAULT_PARAMS);
  const { N, r, p } = DEFAULT_PARAMS;
  return `scrypt$${N}$${r}$${p}$${salt.toString('base64')}$${hash.toString('base64')}`;
}

interface ParsedHash {
  N: number;
  r: number;
  p: number;
  salt: Buffer;
  hash: Buffer;
}

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

function parseHash(encoded: string): ParsedHash | undefined {
  const parts = encoded.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return undefined;
  const [, nText = '', rText = '', pText = '', saltText = '', hashText = ''] = parts;
  if (![nText, rText, pText].every((text) => /^[1-9]\d{0,7}$/.test(text))) return undefined;
  const N = Number(nText);
  const r = Number(rText);
  const p = Number(pText);
  // N must be a power of two above 1 (scrypt's definition); the rest are the bounds above.
  if (N < 2 || N > MAX_N || (N & (N - 1)) !== 0 || r > MAX_R || p > MAX_P) return undefined;
  if (!BASE64.test(saltText) || !BASE64.test(hashText)) return undefined;
  const salt = Buffer.from(saltText, 'base64');
  const hash = Buffer.from(hashText, 'base64');
  if (salt.length < 8 || hash.length < 16 || hash.length > 64) return undefined;
  return { N, r, p, salt, hash };
}

/** True when `encoded` is a hash this module can check (for config validation and diagnostics). */
export function isPasswordHash(encoded: unknown): boolean {
  return typeof encoded === 'string' && parseHash(encoded) !== undefined;
}

/**
 * Checks a password against a stored hash. Never throws: a malformed hash, a non-string or an scrypt
 * failure all mean "no", so no input can turn a sign-in into a 500 or a distinguishable error.
 */
export async function verifyPassword(password: string, encoded: string): Promise<boolean> {
  try {
    if (typeof password !== 'string' || typeof encoded !== 'string') return false;
    const parsed = parseHash(encoded);
    if (!parsed) return false;
    const candidate = await scrypt(password, parsed.salt, parsed.hash.length, parsed);
    // Constant-time: the comparison must not reveal how many leading bytes matched.
    return timingSafeEqual(candidate, parsed.hash);
  } catch {
    return false;
  }
}

/** A fixed salt and target for dummy checks; nothing can ever match it, which is the point. */
const DUMMY_SALT = Buffer.alloc(SALT_BYTES, 0x5a);
const DUMMY_HASH = Buffer.alloc(HASH_BYTES);

/**
 * Does the same work as `verifyPassword` with the default parameters and returns false. Called for an
 * unknown username so that the response takes as long as for a known one: otherwise the timing would
 * tell an attacker which usernames exist.
 */
export async function verifyPasswordForUnknownUser(password: string): Promise<false> {
  try {
    const candidate = await scrypt(typeof password === 'string' ? password : '', DUMMY_SALT, HASH_BYTES, DEFAULT_PARAMS);
    timingSafeEqual(candidate, DUMMY_HASH);
  } catch {
    // Same contract as verifyPassword: never throws.
  }
  return false;
}
