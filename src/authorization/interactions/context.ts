/**
 * What every interaction action needs, passed explicitly: each action is a plain function of this
 * context and the request, so it can be called on its own (and in a unit test) without the dispatch.
 */
import type Provider from 'oidc-provider';
import { type Clock, epochSeconds, systemClock } from '../../core/clock.ts';
import type { IdentityProvider } from '../../idp/types.ts';
import type { Logger } from '../../observability/logger.ts';
import type { SecretBox } from '../../storage/secret-box.ts';
import type { Storage } from '../../storage/types.ts';
import type { PageBranding } from '../../ui/layout.ts';
import type { ProtectedResource } from '../provider.ts';

export interface InteractionContext {
  provider: Provider;
  /** The gateway's one IdP callback, `<issuer>/callback`: every IdP redirects back there. */
  callbackUrl: string;
  resources: readonly ProtectedResource[];
  canonicalizeResource: (value: string) => string | undefined;
  storage: Storage;
  secretBox: SecretBox;
  identityProviders: readonly IdentityProvider[];
  /** HMAC key of the CSRF tokens and of the browser-binding cookie. */
  consentSecret: Buffer;
  branding: PageBranding;
  logger: Logger;
  /** Seconds the user's IdP tokens are kept. */
  tokenRetention: { idpTokens: number };
  /** Decides pending-login expiry; tests pass their own clock to reach expiries without waiting. */
  clock: Clock;
}

/** Everything but the derived callback URL and the clock, as the authorization server has it. */
export interface InteractionOptions extends Omit<InteractionContext, 'callbackUrl' | 'clock'> {
  issuer: string;
  clock?: Clock;
}

export function createInteractionContext({ issuer, clock, ...rest }: InteractionOptions): InteractionContext {
  return { ...rest, callbackUrl: new URL('/callback', issuer).href, clock: clock ?? systemClock };
}

/** Epoch seconds by the context's clock, the unit of storage TTLs and oidc-provider expiries. */
export function nowSeconds(ctx: Pick<InteractionContext, 'clock'>): number {
  return epochSeconds(ctx.clock);
}
