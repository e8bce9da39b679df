/**
 * What the identity-provider tests share: fresh per-login secrets, and the check that a login failed
 * the way the gateway tells a client (an IdpLoginError with its public OAuth code).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { IdpLoginError, type IdpLoginState } from '../../../src/idp/types.ts';

/** The gateway's own state, PKCE verifier and nonce for one login to the IdP. */
export function newLogin(): IdpLoginState {
  return { state: randomBytes(24).toString('base64url'), codeVerifier: randomBytes(48).toString('base64url'), nonce: randomBytes(16).toString('base64url') };
}

/** Awaits a refused login: an IdpLoginError with `publicCode`, and a private detail matching `detail`. */
export async function assertLoginError(promise: Promise<unknown>, publicCode: IdpLoginError['publicCode'], detail?: RegExp): Promise<IdpLoginError> {
  const error = await promise.then(
    () => assert.fail('expected an IdpLoginError'),
    (caught: unknown) => caught,
  );
  assert.ok(error instanceof IdpLoginError, `expected IdpLoginError, got ${String(error)}`);
  assert.equal(error.publicCode, publicCode, `publicCode (detail: ${error.detail})`);
  if (detail) assert.match(error.detail, detail);
  return error;
}
