/**
 * Cache lifetimes of the authorization server's public documents (RFC 9111 §5.2.2): clients and shared
 * caches may keep them, because every URL in them comes from `publicUrl` (public-origin.ts), so one
 * copy is right for every requester. oidc-provider sends no `Cache-Control` on them; errors keep its
 * own headers (`no-store` where it sets one), since only a 200 is marked.
 */
import type Provider from 'oidc-provider';
import { JWKS_MAX_AGE_SECONDS } from './signing-keys.ts';

/** The metadata changes only with the configuration (a restart). */
export const METADATA_MAX_AGE_SECONDS = 300;

/**
 * The JWKS lifetime is owned by the signing-key lifecycle (signing-keys.ts): a new key is published
 * several of these periods before it signs, so no verifier holding a cached copy meets an unknown `kid`.
 */
export { JWKS_MAX_AGE_SECONDS };

/** Marks successful GET/HEAD answers at `paths.metadata` and `paths.jwks` as publicly cacheable. */
export function cachePublicDocuments(provider: Provider, paths: { metadata: string; jwks: string }): void {
  const cacheControl = new Map([
    [paths.metadata, `public, max-age=${METADATA_MAX_AGE_SECONDS}`],
    [paths.jwks, `public, max-age=${JWKS_MAX_AGE_SECONDS}`],
  ]);
  provider.use(async (ctx, next) => {
    await next();
    if (ctx.status !== 200 || (ctx.method !== 'GET' && ctx.method !== 'HEAD')) return;
    const value = cacheControl.get(ctx.path);
    if (value !== undefined) ctx.set('cache-control', value);
  });
}
