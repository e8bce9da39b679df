/**
 * Changes the keys a running oidc-provider signs with and publishes, in place (docs/keys.md).
 *
 * oidc-provider reads `jwks` once, in its constructor, into a per-instance record (its module
 * `lib/helpers/weak_cache.js`): `keystore`, which `selectForSign` picks the signing key from for
 * access tokens (models/formats/jwt.js) and ID tokens (models/id_token.js), and `jwks`, which the
 * /jwks action serves. It offers no public call to change them. Two ways were weighed:
 *
 * - Build a new Provider per key change and swap the request listener. Public API only, but
 *   everything attached to an instance after construction would be lost or split between instances:
 *   event listeners (the audit log), the patched `Client.prototype.redirectUriAllowed`, middleware
 *   and hooks other modules add, the client and CIMD caches, and the interaction steps that hold
 *   the instance. Each of those is a silent failure waiting for the next rotation.
 * - Replace the two fields of the one instance (chosen). The same instance keeps serving; the swap
 *   is synchronous, so no request sees a half-changed key set. Its dependency on internals is small
 *   (one module path, two fields, KeyStore's `clear`/`add`/`selectForSign`), oidc-provider is pinned to
 *   an exact version in package.json, and `attachSigningKeys` checks all of it when the gateway
 *   starts and after every swap, so an upgrade that moves them fails at start-up with
 *   ERR_AUTHORIZATION_SETUP instead of at the first rotation weeks later
 *   (test/unit/authorization/signing-key-rotation.test.ts covers it).
 */
import type { JWK } from 'jose';
import type Provider from 'oidc-provider';
import { ErrorCode, GatewayError } from '../core/errors.ts';
import { publicJwk, type SigningKeyState } from './signing-keys.ts';

interface ProviderKeyStore {
  clear(): void;
  add(key: JWK): void;
  selectForSign(options: { alg: string; use: string }): JWK[];
}

interface ProviderInternals {
  keystore: ProviderKeyStore;
  jwks: { keys: JWK[] };
}

// A variable, so TypeScript does not look for declarations of a module the package does not type.
const INTERNALS_MODULE = 'oidc-provider/lib/helpers/weak_cache.js';

async function internalsOf(provider: Provider): Promise<ProviderInternals> {
  const module = (await import(INTERNALS_MODULE)) as { default?: (provider: Provider) => unknown };
  const internals = typeof module.default === 'function' ? (module.default(provider) as Partial<ProviderInternals> | undefined) : undefined;
  const keystore = internals?.keystore;
  const usable =
    typeof keystore?.clear === 'function' &&
    typeof keystore.add === 'function' &&
    typeof keystore.selectForSign === 'function' &&
    Array.isArray(internals?.jwks?.keys);
  if (!usable) {
    throw new GatewayError(
      ErrorCode.AUTHORIZATION_SETUP,
      'this oidc-provider version keeps its signing keys where the gateway does not expect them; signing-key rotation cannot work (see src/authorization/provider-keystore.ts)',
    );
  }
  return internals as ProviderInternals;
}

/**
 * Puts `state` into the provider: the active key first (the one `selectForSign` returns; sorting is
 * stable and every key scores alike), the others as public keys only, so no key but the active one
 * can ever sign, while an ID token hint signed by a key still published can still be verified.
 */
function install(internals: ProviderInternals, state: SigningKeyState): void {
  const activeKid = state.active.jwk.kid;
  internals.keystore.clear();
  internals.keystore.add(structuredClone(state.active.jwk));
  for (const entry of state.published) if (entry.jwk.kid !== activeKid) internals.keystore.add(publicJwk(entry.jwk));
  internals.jwks = { keys: state.published.map((entry) => publicJwk(entry.jwk)) };
  const signer = internals.keystore.selectForSign({ alg: 'ES256', use: 'sig' })[0];
  if (signer?.kid !== activeKid) {
    throw new GatewayError(ErrorCode.AUTHORIZATION_SETUP, `oidc-provider would sign with key ${String(signer?.kid)} instead of the active ${activeKid}`);
  }
}

/**
 * Installs the current key set and returns the function that installs each later one (for
 * SigningKeyRing.onChange). Rejects with ERR_AUTHORIZATION_SETUP when the internals are not as expected.
 */
export async function attachSigningKeys(provider: Provider, state: SigningKeyState): Promise<(state: SigningKeyState) => void> {
  const internals = await internalsOf(provider);
  install(internals, state);
  return (next) => install(internals, next);
}
