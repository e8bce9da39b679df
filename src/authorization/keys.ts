/**
 * The gateway's own key material: the ES256 key that signs access tokens (published at the JWKS URI),
 * and the HMAC secrets for cookies and CSRF tokens. Generated on first start, stored encrypted at rest
 * (AES-256-GCM through SecretBox), so a restart or another replica uses the same keys and tokens
 * issued before stay valid.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { exportJWK, generateKeyPair, type JWK } from 'jose';
import { ErrorCode, GatewayError } from '../core/errors.ts';
import { NS } from '../storage/records.ts';
import type { SecretBox } from '../storage/secret-box.ts';
import type { Storage } from '../storage/types.ts';

export interface GatewayKeys {
  /** Private signing keys, newest first; oidc-provider signs with the first. */
  signing: JWK[];
  /** Keys for oidc-provider's own cookies (Keygrip: the first signs, all verify). */
  cookieKeys: string[];
  /** HMAC key for the consent cookie and CSRF tokens. */
  consentSecret: Buffer;
}

interface StoredKeys {
  signing: JWK[];
  cookieKeys: string[];
  consentSecret: string;
}

const RECORD = 'gateway-keys';

async function generateSigningKey(): Promise<JWK> {
  const { privateKey } = await generateKeyPair('ES256', { extractable: true });
  const jwk = await exportJWK(privateKey);
  return { ...jwk, kid: randomUUID(), alg: 'ES256', use: 'sig' };
}

const CREATOR_CLAIM = 'gateway-keys-creator';
const CREATION_WAIT_MS = 10_000;

/**
 * Loads the keys, creating them once. Replicas starting together on one fresh store must end with
 * the same keys, so creation is claimed with an atomic counter: the first claimant generates, the
 * others wait for its record.
 */
export async function loadOrCreateKeys(storage: Storage, box: SecretBox, configuredConsentSecret?: string): Promise<GatewayKeys> {
  let sealed = await storage.get<string>(NS.keys, RECORD);
  if (sealed === undefined) {
    const claim = await storage.increment(NS.keys, CREATOR_CLAIM, CREATION_WAIT_MS / 1000);
    if (claim === 1) {
      const fresh: StoredKeys = {
        signing: [await generateSigningKey()],
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
  if (box.needsRotation(sealed)) await storage.set(NS.keys, RECORD, box.sealJson(stored, RECORD));
  return {
    signing: stored.signing,
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

/** The public half of the signing keys, for the JWKS document and the gateway's token check. */
export function publicJwks(keys: GatewayKeys): JWK[] {
  return keys.signing.map(({ d: _private, ...publicPart }) => publicPart);
}
