/** The oidc-provider interaction this browser started, or an error page when there is none. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Interaction } from 'oidc-provider';
import { sendErrorPage } from '../../ui/layout.ts';
import type { InteractionContext } from './context.ts';

/**
 * The interaction behind the browser's interaction cookie. Undefined means the error page was already
 * sent. Callers still compare its uid with the one in the URL (another tab's interaction).
 */
export async function loadInteraction(
  ctx: Pick<InteractionContext, 'provider' | 'branding' | 'logger'>,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<Interaction | undefined> {
  try {
    return await ctx.provider.interactionDetails(req, res);
  } catch (error) {
    // Usually an expired interaction or a missing cookie; a storage failure looks the same to the
    // person, so the reason goes to the log.
    ctx.logger.info({ event: 'interaction.unavailable', reason: (error as Error).message }, 'interaction could not be loaded');
    sendErrorPage(res, 400, ctx.branding, 'This sign-in has expired', 'The sign-in request is no longer valid, or it was started in another browser.');
    return undefined;
  }
}
