/**
 * After consent: binds the browser, stores the pending login and sends the browser to the IdP. The
 * MCP spec's confused-deputy rule is why nothing reaches here before consent.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Interaction } from 'oidc-provider';
import type { IdentityProvider } from '../../idp/types.ts';
import { bindingDigest, issueBinding } from '../browser-binding.ts';
import type { InteractionContext } from './context.ts';
import { discardPendingLogin, newPendingLogin, storePendingLogin } from './pending-login.ts';
import type { RequestedAccess } from './requested-access.ts';

export async function startIdpLogin(
  ctx: InteractionContext,
  req: IncomingMessage,
  res: ServerResponse,
  flow: { interaction: Interaction; access: RequestedAccess; idp: IdentityProvider },
): Promise<void> {
  const { access, idp } = flow;
  const clientId = String(flow.interaction.params.client_id);
  const client = await ctx.provider.Client.find(clientId);
  // The callback must arrive in this browser (RFC 9700 §4.7): the cookie here, its digest in the record.
  const binding = issueBinding(req, ctx.consentSecret);
  const pending = newPendingLogin(ctx, { ...flow, clientName: client?.clientName ?? clientId, browser: bindingDigest(binding.value) });
  await storePendingLogin(ctx, pending);
  ctx.logger.info({ event: 'login.redirect', clientId, server: access.server.name, provider: idp.id }, 'redirecting to the identity provider');

  let target: URL;
  try {
    target = await idp.authorizationUrl(pending, ctx.callbackUrl);
  } catch (error) {
    await discardPendingLogin(ctx, pending.state);
    ctx.logger.error({ err: error, provider: idp.id }, 'could not build the identity provider redirect');
    await ctx.provider.interactionFinished(
      req,
      res,
      { error: 'temporarily_unavailable', error_description: 'The identity provider is unavailable.' },
      { mergeWithLastSubmission: false },
    );
    return;
  }
  res.writeHead(303, { location: target.href, 'set-cookie': binding.setCookie, 'cache-control': 'no-store' });
  res.end();
}
