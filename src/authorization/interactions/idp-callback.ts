/**
 * GET /callback: the IdP sends the browser back here. In order: the state is taken (single-use,
 * unexpired), the browser must be the one that gave consent, the IdP completes the login, the access
 * rules decide, and only then are the user, the IdP tokens and a grant recorded and the client's
 * authorization finished.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { type IdentityProvider, IdpLoginError, type IdpLoginResult } from '../../idp/types.ts';
import { sendErrorPage } from '../../ui/layout.ts';
import { bindingDigest, readBinding } from '../browser-binding.ts';
import { checkAccessRules } from './access-denied.ts';
import type { InteractionContext } from './context.ts';
import { finishByUid } from './finish.ts';
import { type PendingLogin, takePendingLogin } from './pending-login.ts';
import { recordLogin } from './record-login.ts';

export async function handleIdpCallback(ctx: InteractionContext, req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
  const pending = await takePendingLogin(ctx, url.searchParams.get('state'));
  if (!pending) {
    sendErrorPage(
      res,
      400,
      ctx.branding,
      'This sign-in has expired',
      'This sign-in link was already used or has expired. Start the sign-in again from your application.',
    );
    return;
  }
  const browser = readBinding(req, ctx.consentSecret);
  if (!browser || bindingDigest(browser) !== pending.browser) {
    // RFC 9700 §4.7: a callback in a browser that did not approve this client is refused (login CSRF).
    ctx.logger.warn({ event: 'callback.unbound', clientId: pending.clientId }, 'identity provider callback in a browser that did not give consent');
    sendErrorPage(
      res,
      403,
      ctx.branding,
      'Sign-in refused',
      'This sign-in was approved in a different browser. Start it again from your application in this browser.',
    );
    return;
  }
  const idp = ctx.identityProviders.find((candidate) => candidate.id === pending.providerId);
  if (!idp) {
    sendErrorPage(res, 400, ctx.branding, 'Sign-in refused', 'The identity provider for this sign-in is no longer configured.');
    return;
  }
  const login = await completeIdpLogin(ctx, res, { url, pending, idp });
  if (!login) return;
  const decision = checkAccessRules(ctx, res, { pending, login, idp });
  if (!decision.allowed) return; // nothing is recorded: no user, no IdP tokens, no consent, no grant
  await grantAndFinish(ctx, res, pending, login, decision.rule);
}

/** The IdP's verdict; undefined when it failed and the client was already sent the OAuth error. */
async function completeIdpLogin(
  ctx: InteractionContext,
  res: ServerResponse,
  flow: { url: URL; pending: PendingLogin; idp: IdentityProvider },
): Promise<IdpLoginResult | undefined> {
  const { pending, idp } = flow;
  try {
    return await idp.completeLogin(flow.url, pending, ctx.callbackUrl);
  } catch (error) {
    const failure =
      error instanceof IdpLoginError ? error : new IdpLoginError('server_error', 'The sign-in could not be completed.', String(error), { cause: error });
    ctx.logger.warn(
      { event: 'login.failed', provider: idp.id, clientId: pending.clientId, reason: failure.publicCode, detail: failure.detail },
      'IdP login failed',
    );
    await finishByUid(ctx, res, pending.interactionUid, { error: failure.publicCode, error_description: failure.message });
    return undefined;
  }
}

async function grantAndFinish(
  ctx: InteractionContext,
  res: ServerResponse,
  pending: PendingLogin,
  login: IdpLoginResult,
  rule: string | undefined,
): Promise<void> {
  const user = await recordLogin(ctx, pending, login);
  const grant = new ctx.provider.Grant({ accountId: user.id, clientId: pending.clientId });
  if (pending.oidcScopes.length > 0) grant.addOIDCScope(pending.oidcScopes.join(' '));
  grant.addResourceScope(pending.resourceIndicator, pending.resourceScopes.join(' '));
  // Declined on the consent page: rejected, so the token carries fewer scopes and no new prompt follows.
  if (pending.declinedScopes && pending.declinedScopes.length > 0) grant.rejectResourceScope(pending.resourceIndicator, pending.declinedScopes.join(' '));
  const grantId = await grant.save();
  // The audit record of what the person approved: who, which client and where it returns, which server and scopes.
  ctx.logger.info(
    {
      event: 'login.succeeded',
      user: user.id,
      clientId: pending.clientId,
      redirectUri: pending.redirectUri,
      server: pending.resource,
      scopes: pending.resourceScopes,
      grantId,
      rule,
    },
    'user signed in',
  );
  await finishByUid(ctx, res, pending.interactionUid, { login: { accountId: user.id }, consent: { grantId } });
}
