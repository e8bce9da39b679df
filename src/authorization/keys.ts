/**
 * The gateway's own key material: the ES256 keys that sign access tokens (published at the JWKS URI,
 * rotated as docs/keys.md describes), and the HMAC secrets for cookies and CSRF tokens. Generated on
 * first start, stored encrypted at rest (AES-256-GCM through SecretBox) in one record, so a restart
 * or another replica uses the same keys and tokens issued before stay valid.
 *
 * Several writers may change the record while gateways run (the scheduled rotation on any replica,
 * `mcp-oauth-gateway keys rotate`, the re-seal after an encryption-key change). Each takes a lock
 * claimed with `setIfAbsent`, reads the record again under it and writes its change, so no writer
 * overwrites another's key.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { type Clock, systemClock } from '../core/clock.ts';
import { ErrorCode, GatewayError } from '../core/errors.ts';
import { NS } from '../storage/records.ts';
import type { SecretBox } from '../storage/secret-box.ts';
import type { Storage } from '../storage/types.ts';
import { generateSigningJwk, type SigningKeyEntry, signingEntriesFrom } from './signing-keys.ts';

export interface GatewayKeys {
  /** Every stored signing key with its lifecycle times (signing-keys.ts). */
  signing: SigningKeyEntry[];
  /** The sealed record the keys were read from; a replica compares it to notice a change. */
  sealed: string;
  /** Keys for oidc-provider's own cookies (Keygrip: the first signs, all verify). */
  cookieKeys: string[];
  /** HMAC key for the consent cookie and CSRF tokens. */
  consentSecret: Buffer;
}

interface StoredKeys {
  /** SigningKeyEntry[]; a bare JWK[] in records written before rotation existed. */
  signing: unknown[];
  cookieKeys: string[];
  consentSecret: string;
}

const RECORD = 'gateway-keys';
const CREATOR_CLAIM = 'gateway-keys-creator';
const CREATION_WAIT_MS = 10_000;
/** Held while a writer reads, changes and writes the record; expires on its own if the writer dies. */
const WRITE_LOCK = 'gateway-keys-lock';
const WRITE_LOCK_TTL_SECONDS = 30;

/**
 * Loads the keys, creating them once. Replicas starting together on one fresh store must end with
 * the same keys, so creation is claimed with an atomic counter: the first claimant generates, the
 * others wait for its record.
 */
export async function loadOrCreateKeys(storage: Storage, box: SecretBox, configuredConsentSecret?: string, clock: Clock = systemClock): Promise<GatewayKeys> {
  let sealed = await storage.get<string>(NS.keys, RECORD);
  if (sealed === undefined) {
    const claim = await storage.increment(NS.keys, CREATOR_CLAIM, CREATION_WAIT_MS / 1000);
    if (claim === 1) {
      const now = clock.now();
      const fresh: StoredKeys = {
        // The first key signs at once: no token or JWKS cache exists yet that would need warning.
        signing: [{ jwk: await generateSigningJwk(), createdAt: now, activatesAt: now } satisfies SigningKeyEntry],
        cookieKeys: [randomBytes(32).toString('base64url')],
        consentSecret: randomBytes(32).toString('base64url'),
      };
      sealed = box.sealJson(fresh, RECORD);
      await storage.set(NS.keys, RECORD, sealed);
    } else {
      sealed = await waitForKeys(storage);
    }
  }
  const stored = box.openJson<StoredKeys>(sealed, RECORD);
  // Encryption-key rotation: once a new key is configured first, re-seal this long-lived record with
  // it, so the old key is no longer needed for it (other sealed records are rewritten at each login).
  // Under the write lock, so a signing-key rotation written meanwhile is not overwritten; when the
  // lock is busy, its holder's write re-seals anyway.
  if (box.needsRotation(sealed)) sealed = (await resealUnderLock(storage, box)) ?? sealed;
  return {
    signing: signingEntriesFrom(stored.signing),
    sealed,
    cookieKeys: stored.cookieKeys,
    consentSecret: Buffer.from(configuredConsentSecret ?? stored.consentSecret, configuredConsentSecret ? 'utf8' : 'base64url'),
  };
}

async function waitForKeys(storage: Storage): Promise<string> {
  const deadline = Date.now() + CREATION_WAIT_MS;
  while (Date.now() < deadline) {
    const sealed = await storage.get<string>(NS.keys, RECORD);
    if (sealed !== undefined) return sealed;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new GatewayError(
    ErrorCode.AUTHORIZATION_KEYS_NOT_CREATED,
    'another gateway instance claimed key creation but did not store keys within 10 s; start again',
  );
}

async function resealUnderLock(storage: Storage, box: SecretBox): Promise<string | undefined> {
  const result = await withWriteLock(storage, 0, async () => {
    const current = await storage.get<string>(NS.keys, RECORD);
    if (current === undefined) return undefined;
    const resealed = box.sealJson(box.openJson<StoredKeys>(current, RECORD), RECORD);
    await storage.set(NS.keys, RECORD, resealed);
    return resealed;
  });
  return result.acquired ? result.value : undefined;
}

/** The sealed key record as stored now (undefined before the first start): cheap to compare with the last one read. */
export function readSealedKeys(storage: Storage): Promise<string | undefined> {
  return storage.get<string>(NS.keys, RECORD);
}

/** The signing keys as stored now, with the sealed record they came from; undefined before the first start. */
export async function readSigningKeys(storage: Storage, box: SecretBox): Promise<{ sealed: string; signing: SigningKeyEntry[] } | undefined> {
  const sealed = await storage.get<string>(NS.keys, RECORD);
  if (sealed === undefined) return undefined;
  return { sealed, signing: signingKeysIn(box, sealed) };
}

/** Opens a sealed record and returns only its signing keys. */
export function signingKeysIn(box: SecretBox, sealed: string): SigningKeyEntry[] {
  return signingEntriesFrom(box.openJson<StoredKeys>(sealed, RECORD).signing);
}

export type SigningKeyChange = (current: SigningKeyEntry[]) => Promise<SigningKeyEntry[] | undefined>;

export type SigningKeyUpdate = { outcome: 'written'; signing: SigningKeyEntry[] } | { outcome: 'unchanged'; signing: SigningKeyEntry[] } | { outcome: 'busy' };

/**
 * Applies `change` to the stored signing keys under the write lock. `change` sees the list as stored
 * at that moment (another replica may just have rotated) and returns the new list, or undefined to
 * leave it. `waitMs` is how long to wait for a lock another writer holds (0: give up at once).
 */
export async function updateSigningKeys(storage: Storage, box: SecretBox, change: SigningKeyChange, waitMs = 0): Promise<SigningKeyUpdate> {
  const result = await withWriteLock(storage, waitMs, async (): Promise<SigningKeyUpdate> => {
    const sealed = await storage.get<string>(NS.keys, RECORD);
    if (sealed === undefined) {
      throw new GatewayError(ErrorCode.AUTHORIZATION_KEYS_MISSING, 'no signing keys are stored yet: start the gateway once on this storage first');
    }
    const stored = box.openJson<StoredKeys>(sealed, RECORD);
    const current = signingEntriesFrom(stored.signing);
    const next = await change(current);
    if (next === undefined) return { outcome: 'unchanged', signing: current };
    await storage.set(NS.keys, RECORD, box.sealJson({ ...stored, signing: next } satisfies StoredKeys, RECORD));
    return { outcome: 'written', signing: next };
  });
  return result.acquired ? result.value : { outcome: 'busy' };
}

/**
 * Runs `work` while holding the record's write lock. The lock is a `setIfAbsent` claim with a TTL, so
 * of two writers exactly one proceeds and a crashed writer's claim lapses by itself; it is released
 * only by its owner (a value compared before deleting).
 */
async function withWriteLock<T>(storage: Storage, waitMs: number, work: () => Promise<T>): Promise<{ acquired: true; value: T } | { acquired: false }> {
  const owner = randomUUID();
  const deadline = Date.now() + waitMs;
  while (!(await storage.setIfAbsent(NS.keys, WRITE_LOCK, owner, WRITE_LOCK_TTL_SECONDS))) {
    if (Date.now() >= deadline) return { acquired: false };
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  try {
    return { acquired: true, value: await work() };
  } finally {
    if ((await storage.get<string>(NS.keys, WRITE_LOCK)) === owner) await storage.delete(NS.keys, WRITE_LOCK);
  }
}
