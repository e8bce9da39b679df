/**
 * GET /interaction/:uid: the consent page. The MCP spec's confused-deputy rule: a gateway that sends
 * everyone to its IdP with one static client must ask the person, per client, before it does.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { sendErrorPage, sendPage } from '../../ui/layout.ts';
import { consentPage, describeRedirect } from '../pages/consent-page.ts';
import { onlyLoopbackRedirects } from '../redirect-uris.ts';
import type { InteractionContext } from './context.ts';
import { loadInteraction } from './load-interaction.ts';
import { optionalScopes, requestedAccess } from './requested-access.ts';
import { CONSENT_STEP, stepCsrfToken } from './steps.ts';

export async function showConsent(ctx: InteractionContext, req: IncomingMessage, res: ServerResponse, uid: string): Promise<void> {
  const interaction = await loadInteraction(ctx, req, res);
  if (!interaction) return;
  if (interaction.uid !== uid) {
    sendErrorPage(res, 400, ctx.branding, 'This sign-in has expired', 'The sign-in request does not match this browser.');
    return;
  }
  ctx.logger.debug({ uid, prompt: interaction.prompt }, 'interaction started');
  const clientId = String(interaction.params.client_id);
  const client = await ctx.provider.Client.find(clientId);
  const access = requestedAccess(ctx, interaction.params);
  if (!client || !access) {
    sendErrorPage(
      res,
      400,
      ctx.branding,
      'Unknown application',
      'The application or MCP server in this request is not known to this gateway. Each sign-in is for exactly one MCP server.',
    );
    return;
  }
  const optional = optionalScopes(access);
  const redirectUri = String(interaction.params.redirect_uri);
  const isMetadataDocument = /^https:\/\//.test(clientId);
  const page = consentPage({
    flowId: uid,
    csrf: stepCsrfToken(ctx.consentSecret, CONSENT_STEP, uid),
    clientName: client.clientName ?? clientId,
    clientId,
    redirectTarget: describeRedirect(redirectUri),
    metadataHost: isMetadataDocument ? new URL(clientId).host : undefined,
    onlyLoopbackRedirects: onlyLoopbackRedirects(client.redirectUris ?? []),
    server: access.server,
    scopes: access.resourceScopes.map((name) => ({
      name,
      description: access.server.scopeDescriptions?.[name],
      optional: optional.includes(name),
    })),
    // The provider is chosen after consent (sign-in chooser), so the consent page offers a single
    // "approve": with one entry the consent page renders exactly that button.
  });
  sendPage(res, 200, ctx.branding, 'Allow access?', page);
}
