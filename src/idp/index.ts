/**
 * Builds the configured identity providers. One factory per `identityProviders[].type`.
 */

import type { IncomingMessage } from 'node:http';
import type { IdentityProviderConfig, LocalProviderConfig } from '../config/schema.ts';
import type { Clock } from '../core/clock.ts';
import type { OutboundFetch } from '../http/outbound.ts';
import type { Logger } from '../observability/logger.ts';
import type { Storage } from '../storage/types.ts';
import type { PageBranding } from '../ui/layout.ts';
import { GithubIdentityProvider } from './github.ts';
import { LocalIdentityProvider } from './local.ts';
import { OAuth2IdentityProvider } from './oauth2.ts';
import { createOidcProvider } from './presets/index.ts';
import type { IdentityProvider } from './types.ts';

export interface IdentityProviderDeps {
  storage: Storage;
  issuer: string;
  cookieSecret: Buffer | string;
  branding: PageBranding;
  logger: Logger;
  fetch: OutboundFetch;
  clientAddress: (req: IncomingMessage) => string | undefined;
  /** Stamps the expiry of IdP tokens (the system clock by default). */
  clock?: Clock;
}

export interface IdentityProviders {
  all: IdentityProvider[];
  /** Local providers serve their own sign-in pages under /sign-in/<id>. */
  local: Map<string, LocalIdentityProvider>;
}

export function createIdentityProviders(configs: readonly IdentityProviderConfig[], deps: IdentityProviderDeps): IdentityProviders {
  const local = new Map<string, LocalIdentityProvider>();
  const all = configs.map((config): IdentityProvider => {
    if (config.type === 'local') {
      const provider = new LocalIdentityProvider({
        config: config as LocalProviderConfig,
        storage: deps.storage,
        issuer: deps.issuer,
        cookieSecret: deps.cookieSecret,
        branding: deps.branding,
        logger: deps.logger,
        clientAddress: deps.clientAddress,
      });
      local.set(config.id, provider);
      return provider;
    }
    if (config.type === 'github') return new GithubIdentityProvider(config, { fetch: deps.fetch, logger: deps.logger, clock: deps.clock });
    if (config.type === 'oauth2') return new OAuth2IdentityProvider(config, { fetch: deps.fetch, clock: deps.clock });
    return createOidcProvider(config, { fetch: deps.fetch, logger: deps.logger, clock: deps.clock });
  });
  return { all, local };
}
