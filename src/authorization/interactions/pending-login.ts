/**
 * A login on its way through the IdP, stored sealed under its `state`. RFC 9700 §4.7.1: the state is
 * single-use (taken with an atomic consume, so of two callbacks with one state only one proceeds) and
 * short-lived (the storage TTL, and the record's own expiry, checked against the context's clock).
 */
import { randomBytes } from 'node:crypto';
import type { Interaction } from 'oidc-provider';
import { ErrorCode, hasErrorCode } from '../../core/errors.ts';
import type { IdentityProvider } from '../../idp/types.ts';
import { NS } from '../../storage/records.ts';
import { type InteractionContext, nowSeconds } from './context.ts';
import type { RequestedAccess } from './requested-access.ts';

export const PENDING_LOGIN_TTL_SECONDS = 600;

export interface PendingLogin {
  state: string;
  codeVerifier: string;
  nonce: string;
  interactionUid: string;
  providerId: string;
  clientId: string;
  clientName: string;
  redirectUri: string;
  /** The resource indicator as the client sent it (or the default), which keys the grant. */
  resourceIndicator: string;
  resource: string;
  resourceScopes: string[];
  oidcScopes: string[];
  /** Optional scopes the person declined on the consent page (absent in records written before it existed). */
  declinedScopes?: string[];
  /** Digest of the browser-binding cookie of the browser that gave consent. */
  browser: string;
  /** Epoch seconds. */
  expiresAt: number;
}

type PendingLoginContext = Pick<InteractionContext, 'storage' | 'secretBox' | 'clock' | 'logger'>;

/** Fresh state, PKCE verifier and nonce for the gateway's own leg to the IdP (RFC 9700 §2.1.1). */
export function newPendingLogin(
  ctx: Pick<InteractionContext, 'clock'>,
  flow: { interaction: Interaction; access: RequestedAccess; idp: IdentityProvider; clientName: string; browser: string },
): PendingLogin {
  const { interaction, access } = flow;
  return {
    state: randomBytes(32).toString('base64url'),
    codeVerifier: randomBytes(48).toString('base64url'),
    nonce: randomBytes(32).toString('base64url'),
    interactionUid: interaction.uid,
    providerId: flow.idp.id,
    clientId: String(interaction.params.client_id),
    clientName: flow.clientName,
    redirectUri: String(interaction.params.redirect_uri),
    resourceIndicator: access.resourceIndicator,
    resource: access.server.resource,
    resourceScopes: access.resourceScopes,
    oidcScopes: access.oidcScopes,
    declinedScopes: access.declinedScopes,
    browser: flow.browser,
    expiresAt: nowSeconds(ctx) + PENDING_LOGIN_TTL_SECONDS,
  };
}

export async function storePendingLogin(ctx: PendingLoginContext, pending: PendingLogin): Promise<void> {
  // Associated data = the state: a sealed record copied under another state will not open.
  await ctx.storage.set(NS.pendingLogins, pending.state, ctx.secretBox.sealJson(pending, pending.state), PENDING_LOGIN_TTL_SECONDS);
}

export async function discardPendingLogin(ctx: PendingLoginContext, state: string): Promise<void> {
  await ctx.storage.delete(NS.pendingLogins, state);
}

/**
 * The pending login for `state`, removed as it is read; undefined when unknown, used, expired or
 * unreadable. Unreadable means sealed under an encryption key the gateway no longer has (a key removed
 * from `secrets.encryptionKeys` during someone's sign-in): the person starts again from their
 * application, as for an expired sign-in, and the operator reads why in the log.
 */
export async function takePendingLogin(ctx: PendingLoginContext, state: string | null): Promise<PendingLogin | undefined> {
  if (!state) return undefined;
  const sealed = await ctx.storage.consume<string>(NS.pendingLogins, state);
  if (sealed === undefined) return undefined;
  let pending: PendingLogin;
  try {
    pending = ctx.secretBox.openJson<PendingLogin>(sealed, state);
  } catch (error) {
    if (!hasErrorCode(error, ErrorCode.SECRET_BOX_OPEN_FAILED)) throw error;
    ctx.logger.warn(
      { event: 'login.pending_unreadable', reason: (error as { reason?: string }).reason },
      'a pending login could not be opened with the configured encryption keys',
    );
    return undefined;
  }
  // A record sealed before `expiresAt` existed relies on the storage TTL alone.
  return (pending.expiresAt ?? Infinity) > nowSeconds(ctx) ? pending : undefined;
}
