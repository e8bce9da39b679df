/**
 * The two ways an interaction ends and the client gets its answer. Both go through oidc-provider,
 * which validated the client and its redirect URI before it created the interaction, so an error
 * reaches only a registered redirect URI (RFC 9700 §4.11, no open redirect).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { sendErrorPage } from '../../ui/layout.ts';
import { type InteractionContext, nowSeconds } from './context.ts';

/** access_denied back to the client, with `iss` (RFC 9207) and the client's `state`. */
export async function finishDenied(ctx: Pick<InteractionContext, 'provider'>, req: IncomingMessage, res: ServerResponse, description: string): Promise<void> {
  await ctx.provider.interactionFinished(req, res, { error: 'access_denied', error_description: description }, { mergeWithLastSubmission: false });
}

/**
 * Finishes the client's authorization by interaction uid: the IdP callback arrives without the
 * interaction cookie (it was set for the consent path), so the interaction is looked up directly.
 */
export async function finishByUid(
  ctx: Pick<InteractionContext, 'provider' | 'branding' | 'clock'>,
  res: ServerResponse,
  uid: string,
  result: Record<string, unknown>,
): Promise<void> {
  const interaction = await ctx.provider.Interaction.find(uid);
  if (!interaction) {
    sendErrorPage(res, 400, ctx.branding, 'This sign-in has expired', 'The sign-in took too long. Start it again from your application.');
    return;
  }
  interaction.result = result as never;
  await interaction.save(Math.max(1, (interaction.exp ?? 0) - nowSeconds(ctx)));
  res.writeHead(303, { location: interaction.returnTo, 'cache-control': 'no-store' });
  res.end();
}
