/**
 * The storage layout of gateways from before credentials were protected at rest (docs/tokens.md,
 * "Tokens at rest"), for testing the start-up migration (src/authorization/at-rest-migration.ts).
 *
 * Those gateways' adapter wrote each oidc-provider model with `storage.set('oidc:<Model>', id, payload)`
 * where `payload.jti === id` (for refresh tokens and codes, the credential itself), indexed grant
 * members as `<Model>:<id>` in `oidc:grant-index`, consumed markers as `<Model>:<id>` in
 * `oidc:consumed`, the user-code index as user code -> id, and kept `client_secret` in the Client
 * record. `writeLegacyToken` writes exactly that; `downgradeToLegacyLayout` turns a store written by the
 * current gateway back into it, given the credentials the client side knows (the store no longer does).
 *
 * Example:
 *   await downgradeToLegacyLayout(storage, box, { tokens: [{ model: 'RefreshToken', value: refreshToken }] });
 */
import type { AdapterPayload } from 'oidc-provider';
import { openClientSecret } from '../../src/authorization/sealed-client-secret.ts';
import { hashedKey } from '../../src/authorization/stored-ids.ts';
import type { SecretBox } from '../../src/storage/secret-box.ts';
import type { Storage } from '../../src/storage/types.ts';

const GRANTABLE = new Set(['AccessToken', 'AuthorizationCode', 'RefreshToken', 'DeviceCode', 'BackchannelAuthenticationRequest']);

export interface LegacyCredential {
  model: string;
  /** The credential as the client holds it (the refresh token, the code). */
  value: string;
}

function remainingSeconds(payload: AdapterPayload): number | undefined {
  return typeof payload.exp === 'number' ? payload.exp - Math.floor(Date.now() / 1000) : undefined;
}

/** One model row as the old adapter's upsert wrote it, with its secondary index entries. */
export async function writeLegacyToken(storage: Storage, model: string, id: string, payload: AdapterPayload, ttl = remainingSeconds(payload)): Promise<void> {
  await storage.set(`oidc:${model}`, id, { ...payload, jti: id }, ttl);
  if (GRANTABLE.has(model) && payload.grantId) await storage.addToSet('oidc:grant-index', payload.grantId, `${model}:${id}`, ttl);
  if (model === 'DeviceCode' && payload.userCode) await storage.set('oidc:user-code', payload.userCode, id, ttl);
}

/**
 * Rewrites the given credentials' rows, their grants' index and every client's secret the way the old
 * adapter stored them, and forgets that the migration ever ran.
 */
export async function downgradeToLegacyLayout(storage: Storage, box: SecretBox, known: { tokens: LegacyCredential[] }): Promise<void> {
  const grantIds = new Set<string>();
  for (const { model, value } of known.tokens) {
    const hashed = hashedKey(value);
    const stored = await storage.get<AdapterPayload>(`oidc:${model}`, hashed);
    if (!stored) throw new Error(`no ${model} stored under the hash of the given credential`);
    await storage.delete(`oidc:${model}`, hashed);
    await writeLegacyToken(storage, model, value, stored);
    const marker = await storage.consume<number>('oidc:consumed', `${model}:${hashed}`);
    if (marker !== undefined) await storage.set('oidc:consumed', `${model}:${value}`, marker, remainingSeconds(stored) ?? 3600);
    if (stored.grantId) grantIds.add(stored.grantId);
  }
  // The current index names stored keys; the old one named credentials, so only known ones can be written back.
  for (const grantId of grantIds) await storage.delete('oidc:grant-tokens', grantId);
  for (const { key, value } of await storage.list<AdapterPayload>('oidc:Client')) {
    await storage.set('oidc:Client', key, openClientSecret(box, value), 86_400);
  }
  await storage.delete('oidc:migration', 'credentials-at-rest-v1');
}
