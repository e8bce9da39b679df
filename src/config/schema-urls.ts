/**
 * URLs in the configuration that the gateway talks to or publishes: https everywhere, plain http only
 * on loopback (local development and tests). One rule, shared by the gateway's own URLs, MCP resource
 * URIs and every identity provider endpoint.
 */
import { z } from 'zod';

export function isLoopbackHost(hostname: string): boolean {
  return hostname === 'localhost' || hostname === '[::1]' || hostname === '::1' || /^127(\.\d{1,3}){3}$/.test(hostname);
}

const HTTPS_ONLY = 'must use https (http is allowed only for localhost/127.0.0.1/[::1])';

/**
 * An absolute https URL (http on loopback). `query: true` allows a query string (an endpoint someone
 * else defines may carry one); credentials and fragments are never allowed.
 */
export function secureUrl(options: { query: boolean }) {
  return z.string().superRefine((value, ctx) => {
    const url = URL.parse(value);
    if (!url) {
      ctx.addIssue({ code: 'custom', message: 'must be an absolute URL' });
      return;
    }
    if (url.protocol !== 'https:' && !(url.protocol === 'http:' && isLoopbackHost(url.hostname))) {
      ctx.addIssue({ code: 'custom', message: HTTPS_ONLY });
    }
    if (options.query) {
      if (url.username || url.password || url.hash) ctx.addIssue({ code: 'custom', message: 'must not contain credentials or a fragment' });
    } else if (url.username || url.password || url.search || url.hash) {
      ctx.addIssue({ code: 'custom', message: 'must not contain credentials, a query or a fragment' });
    }
  });
}

/** Adds the https rule to a URL schema that has its own other checks. */
export function requireSecureScheme(url: URL, ctx: { addIssue(issue: { code: 'custom'; message: string }): void }): void {
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && isLoopbackHost(url.hostname))) {
    ctx.addIssue({ code: 'custom', message: HTTPS_ONLY });
  }
}
