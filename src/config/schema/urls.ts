/**
 * URLs in the configuration that the gateway talks to or publishes: https everywhere, plain http only
 * on loopback (local development and tests). One rule, shared by the gateway's own URLs, MCP resource
 * URIs and every identity provider endpoint, and by the providers that re-check it when built.
 */
import { z } from 'zod';

export function isLoopbackHost(hostname: string): boolean {
  return hostname === 'localhost' || hostname === '[::1]' || hostname === '::1' || /^127(\.\d{1,3}){3}$/.test(hostname);
}

const HTTPS_ONLY = 'must use https (http is allowed only for localhost/127.0.0.1/[::1])';

/**
 * What is wrong with `value` as an https URL (http on loopback); empty when nothing is. `query: true`
 * allows a query string (an endpoint someone else defines may carry one); credentials and fragments
 * are never allowed.
 */
export function secureUrlProblems(value: string, options: { query: boolean }): string[] {
  const url = URL.parse(value);
  if (!url) return ['must be an absolute URL'];
  const problems: string[] = [];
  if (!isSecureScheme(url)) problems.push(HTTPS_ONLY);
  if (options.query) {
    if (url.username || url.password || url.hash) problems.push('must not contain credentials or a fragment');
  } else if (url.username || url.password || url.search || url.hash) {
    problems.push('must not contain credentials, a query or a fragment');
  }
  return problems;
}

/** A string key holding such a URL. */
export function secureUrl(options: { query: boolean }) {
  return (
    z
      .string()
      .superRefine((value, ctx) => {
        for (const message of secureUrlProblems(value, options)) ctx.addIssue({ code: 'custom', message });
      })
      // Shown as a URL in the reference and to editors (JSON Schema `format: uri`); the rule above is the check.
      .meta({ format: 'uri' })
  );
}

/** Adds the https rule to a URL schema that has its own other checks. */
export function requireSecureScheme(url: URL, ctx: { addIssue(issue: { code: 'custom'; message: string }): void }): void {
  if (!isSecureScheme(url)) ctx.addIssue({ code: 'custom', message: HTTPS_ONLY });
}

function isSecureScheme(url: URL): boolean {
  return url.protocol === 'https:' || (url.protocol === 'http:' && isLoopbackHost(url.hostname));
}
