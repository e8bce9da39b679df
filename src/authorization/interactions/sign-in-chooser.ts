/**
 * With several identity providers configured, consent is followed by a page where the person picks
 * one; the chosen id comes back in the decision form and must name a configured provider exactly.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Interaction } from 'oidc-provider';
import { sendErrorPage, sendPage } from '../../ui/layout.ts';
import { signInChooserPage } from '../pages/sign-in-chooser-page.ts';
import type { InteractionContext } from './context.ts';
import { optionalScopes, type RequestedAccess } from './requested-access.ts';
import { startIdpLogin } from './start-idp-login.ts';
import { CHOOSER_STEP, stepCsrfToken } from './steps.ts';

export async function showSignInChooser(ctx: InteractionContext, res: ServerResponse, interaction: Interaction, access: RequestedAccess): Promise<void> {
  const clientId = String(interaction.params.client_id);
  const client = await ctx.provider.Client.find(clientId);
  const page = signInChooserPage({
    flowId: interaction.uid,
    csrf: stepCsrfToken(ctx.consentSecret, CHOOSER_STEP, interaction.uid),
    clientName: client?.clientName ?? clientId,
    serverName: access.server.name,
    providers: ctx.identityProviders.map(({ id, displayName }) => ({ id, displayName })),
    // The optional scopes kept on the consent page travel on with the choice (decision.ts).
    approved: optionalScopes(access).join(' '),
  });
  sendPage(res, 200, ctx.branding, 'Choose how to sign in', page);
}

/** The chooser's POST: `providerId` is whatever the form carried, so it is looked up, never trusted. */
export async function startChosenLogin(
  ctx: InteractionContext,
  req: IncomingMessage,
  res: ServerResponse,
  flow: { interaction: Interaction; access: RequestedAccess; providerId: string | undefined },
): Promise<void> {
  const idp = ctx.identityProviders.find((candidate) => candidate.id === flow.providerId);
  if (!idp) {
    ctx.logger.info(
      { event: 'sign_in.unknown_provider', clientId: String(flow.interaction.params.client_id) },
      'sign-in chooser posted a provider that is not configured',
    );
    sendErrorPage(res, 400, ctx.branding, 'Unknown sign-in option', 'That way of signing in is not available. Start the sign-in again from your application.');
    return;
  }
  await startIdpLogin(ctx, req, res, { interaction: flow.interaction, access: flow.access, idp });
}
