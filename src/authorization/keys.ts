/**
 * The gateway's own key material: the ES256 key that signs access tokens (published at the JWKS URI),
 * and the HMAC secrets for cookies and CSRF tokens. Generated on first start, stored encrypted at rest
 * (AES-256-GCM through SecretBox), so a restart or another replica uses the same keys and tokens
 * issued before stay valid.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { exportJWK, generateKeyPair, type JWK } from 'jose';
import type { Storage } from '../storage/types.ts';
import type { SecretBox } from '../storage/secret-box.ts';
import { NS } from '../storage/records.ts';

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

/**
 * Loads the keys, creating them once. Two replicas starting together may both generate: the last
 * write wins and the loser re-reads it, so both end up with the same keys.
 */
export async function loadOrCreateKeys(storage: Storage, box: SecretBox, configuredConsentSecret?: string): Promise<GatewayKeys> {
  let sealed = await storage.get<string>(NS.keys, RECORD);
  if (sealed === undefined) {
    const fresh: StoredKeys = {
      signing: [await generateSigningKey()],
      cookieKeys: [randomBytes(32).toString('base64url')],
      consentSecret: randomBytes(32).toString('base64url'),
    };
    await storage.set(NS.keys, RECORD, box.sealJson(fresh, RECORD));
    sealed = (await storage.get<string>(NS.keys, RECORD)) as string;
  }
  const stored = box.openJson<StoredKeys>(sealed, RECORD);
  return {
    signing: stored.signing,
    cookieKeys: stored.cookieKeys,
    consentSecret: Buffer.from(configuredConsentSecret ?? stored.consentSecret, configuredConsentSecret ? 'utf8' : 'base64url'),
  };
}

/** The public half of the signing keys, for the JWKS document and the gateway's token check. */
export function publicJwks(keys: GatewayKeys): JWK[] {
  return keys.signing.map(({ d: _private, ...publicPart }) => publicPart);
}
