/**
 * POST /interaction/:uid/decision: every form of the interaction posts here, and `step` says which
 * (consent, sign-in chooser, denied page). Nothing happens before the step's CSRF token and the
 * browser's interaction cookie are verified; a refusal goes back to the client only through
 * oidc-provider, which validated the client and its redirect URI before the interaction existed.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Interaction } from 'oidc-provider';
import { readForm } from '../../http/body.ts';
import { sendErrorPage } from '../../ui/layout.ts';
import type { InteractionContext } from './context.ts';
import { finishDenied } from './finish.ts';
import { loadInteraction } from './load-interaction.ts';
import { narrowToApproved, type RequestedAccess, requestedAccess } from './requested-access.ts';
import { showSignInChooser, startChosenLogin } from './sign-in-chooser.ts';
import { startIdpLogin } from './start-idp-login.ts';
import { CONSENT_STEP, DENIED_STEP, stepCsrfTokenValid } from './steps.ts';

export async function decide(ctx: InteractionContext, req: IncomingMessage, res: ServerResponse, uid: string): Promise<void> {
  const form = await readForm(req);
  const interaction = await loadInteraction(ctx, req, res);
  if (!interaction) return;
  const step = form.step ?? CONSENT_STEP;
  if (interaction.uid !== uid || !stepCsrfTokenValid(ctx.consentSecret, step, uid, form.csrf)) {
    // A form this browser's interaction did not render (cross-site request forgery, or another tab's
    // interaction): audited (docs/audit.md), since nobody sees the refusal but the browser.
    ctx.logger.warn(
      {
        event: 'consent.forged',
        reason: interaction.uid !== uid ? 'interaction_mismatch' : 'csrf_invalid',
        uid,
        step,
        clientId: String(interaction.params.client_id),
      },
      'consent form refused: it could not be verified',
    );
    sendErrorPage(res, 403, ctx.branding, 'Request refused', 'The form could not be verified. Start the sign-in again from your application.');
    return;
  }
  if (step === DENIED_STEP) {
    // The access rules refused this account at the callback (logged there as login.denied).
    await finishDenied(ctx, req, res, 'This account is not allowed to use this MCP server.');
    return;
  }
  const requested = requestedAccess(ctx, interaction.params);
  const access = requested && narrowToApproved(requested, approvedScopes(form, step));
  const decision = form.decision ?? '';
  if (decision === 'deny' || !access) {
    ctx.logger.info({ event: 'consent.denied', clientId: String(interaction.params.client_id), step }, 'user denied the client');
    await finishDenied(ctx, req, res, 'The user denied the request.');
    return;
  }
  if (step === CONSENT_STEP) await approveConsent(ctx, req, res, { interaction, access, decision });
  else await startChosenLogin(ctx, req, res, { interaction, access, providerId: form.provider });
}

/**
 * The optional scopes the person kept: ticked boxes (`scope:<name>`) on the consent page, carried on to
 * the sign-in chooser as one space-separated `approved` field. Only scopes the client asked for count.
 */
function approvedScopes(form: Record<string, string>, step: string): Set<string> {
  if (step !== CONSENT_STEP) return new Set((form.approved ?? '').split(' ').filter(Boolean));
  const approved = new Set<string>();
  for (const name in form) if (name.startsWith('scope:') && form[name] === 'on') approved.add(name.slice(6));
  return approved;
}

/** Consent given: straight to the only IdP, or to the chooser when there are several. */
async function approveConsent(
  ctx: InteractionContext,
  req: IncomingMessage,
  res: ServerResponse,
  flow: { interaction: Interaction; access: RequestedAccess; decision: string },
): Promise<void> {
  const { interaction, access } = flow;
  if (flow.decision !== 'approve') {
    sendErrorPage(res, 400, ctx.branding, 'Request refused', 'The choice you made was not understood. Start the sign-in again.');
    return;
  }
  const only = ctx.identityProviders.length === 1 ? ctx.identityProviders[0] : undefined;
  ctx.logger.info(
    {
      event: 'consent.approved',
      clientId: String(interaction.params.client_id),
      server: access.server.name,
      provider: only?.id,
      scopes: access.resourceScopes,
      declined: access.declinedScopes,
    },
    'user approved the client',
  );
  if (only) await startIdpLogin(ctx, req, res, { interaction, access, idp: only });
  else await showSignInChooser(ctx, res, interaction, access);
}
