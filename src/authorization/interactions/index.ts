/**
 * The interaction between the client's /authorize and the authorization code, one module per step:
 *
 *   /authorize -> GET /interaction/:uid (show-consent.ts) -> POST /interaction/:uid/decision
 *     (decision.ts, CSRF per step, see steps.ts)
 *     -> approve, several identity providers: the sign-in chooser (sign-in-chooser.ts) -> POST
 *        /interaction/:uid/decision with step=sign-in and the chosen provider
 *     -> approve (one provider) or provider chosen (start-idp-login.ts): browser-binding cookie +
 *        pending login stored (pending-login.ts) -> redirect to the IdP (gateway's own PKCE S256,
 *        state, nonce) -> GET /callback (idp-callback.ts) -> identity checked, access rules evaluated,
 *        user and IdP tokens stored encrypted (record-login.ts), grant created -> finish the
 *        interaction by uid (finish.ts) -> /authorize/:uid -> code
 *     -> refused by the access rules: the denied page (access-denied.ts) -> POST
 *        /interaction/:uid/decision with step=denied -> access_denied back to the client
 *     -> deny (consent or chooser): access_denied back to the client
 *
 * Nothing is redirected to the client before oidc-provider has validated the client and its redirect
 * URI (it did, before creating the interaction); failures before that point get an error page.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createInteractionContext, type InteractionOptions } from './context.ts';
import { decide } from './decision.ts';
import { handleIdpCallback } from './idp-callback.ts';
import { showConsent } from './show-consent.ts';

export type { InteractionContext, InteractionOptions } from './context.ts';
export type { PendingLogin } from './pending-login.ts';

/** The actions bound to one context, as the request dispatch calls them. */
export function createInteractions(options: InteractionOptions) {
  const ctx = createInteractionContext(options);
  return {
    showConsent: (req: IncomingMessage, res: ServerResponse, uid: string) => showConsent(ctx, req, res, uid),
    decide: (req: IncomingMessage, res: ServerResponse, uid: string) => decide(ctx, req, res, uid),
    callback: (req: IncomingMessage, res: ServerResponse, url: URL) => handleIdpCallback(ctx, req, res, url),
    callbackUrl: ctx.callbackUrl,
  };
}
