/**
 * oidc-provider builds every URL it publishes or redirects to (the metadata endpoints, `jwks_uri`, the
 * `returnTo` of an interaction) from the request: Koa's `ctx.href`, that is its `protocol` and `host`,
 * which come from the `Host` header, or from `X-Forwarded-Proto`/`-Host` when `app.proxy` is on, or
 * from an absolute-form request target. Any client can send those, and a shared cache could keep the
 * poisoned metadata for everyone (RFC 9700 §4.1.1 on attacker-chosen endpoints; RFC 8414 §3.3: the
 * metadata's URLs are the issuer's).
 *
 * The gateway has one public origin, `publicUrl`, which is the issuer. This pins the Koa app to it:
 * `protocol`, `host` and `href` are answered from the issuer whatever the request says, and forwarded
 * headers are never read (`proxy` off). Koa documents `app.request` as the prototype each request's
 * object is made from, for applications to extend; this is such an extension. Client addresses do not
 * come from here: src/http/client-address.ts resolves them with `trustProxy`.
 */
import type Provider from 'oidc-provider';

/** Makes every URL `provider` derives from a request start with `issuer` (an origin, no path). */
export function pinToPublicOrigin(provider: Provider, issuer: string): void {
  const origin = new URL(issuer);
  const protocol = origin.protocol.slice(0, -1);
  const host = origin.host;
  provider.proxy = false;
  Object.defineProperties(provider.request, {
    protocol: { configurable: true, get: () => protocol },
    host: { configurable: true, get: () => host },
    href: {
      configurable: true,
      get(this: { originalUrl: string }) {
        return `${origin.origin}${originForm(this.originalUrl)}`;
      },
    },
    URL: {
      configurable: true,
      get(this: { originalUrl: string }) {
        return new URL(originForm(this.originalUrl), origin);
      },
    },
  });
}

/** The path and query of a request target; the absolute form (RFC 9112 §3.2.2) loses its authority. */
function originForm(target: string | undefined): string {
  if (target === undefined || target === '') return '/';
  if (target.charCodeAt(0) === 0x2f) return target;
  const url = URL.parse(target);
  return url === null ? '/' : `${url.pathname}${url.search}`;
}
