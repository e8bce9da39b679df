/**
 * Redirect URI rules, as pure functions so the security decision can be read on its own.
 *
 * - Registration accepts https URIs, http on a loopback host, and private-use schemes (RFC 8252 §7.1,
 *   e.g. `cursor://anysphere.cursor-mcp/oauth/callback`). Plain http elsewhere is refused (OAuth 2.1 §2.3.1,
 *   RFC 9700 §2.1 "redirect URIs MUST be protected by TLS except loopback").
 * - Matching is exact string comparison (RFC 9700 §4.1.3), except that a loopback http URI matches on
 *   any port (RFC 8252 §7.3): native apps bind an ephemeral port at run time, and VS Code, Claude Code
 *   and mcp-remote all pick a new one when theirs is busy. That exception applies to every client.
 */

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);

/** Schemes that would execute or read locally rather than hand the code to an app. */
const FORBIDDEN_SCHEMES = new Set(['javascript:', 'data:', 'file:', 'vbscript:', 'about:', 'blob:', 'filesystem:']);

export type RedirectUriKind = 'https' | 'loopback' | 'private-use';

/** Classifies a redirect URI for registration, or returns why it is refused. */
export function classifyRedirectUri(value: string): { kind: RedirectUriKind } | { error: string } {
  const url = URL.parse(value);
  if (!url) return { error: `"${value}" is not an absolute URI` };
  if (value.includes('#')) return { error: `"${value}" must not contain a fragment` };
  if (url.protocol === 'https:') {
    if (url.username || url.password) return { error: `"${value}" must not contain credentials` };
    return { kind: 'https' };
  }
  if (url.protocol === 'http:') {
    if (LOOPBACK_HOSTS.has(url.hostname)) return { kind: 'loopback' };
    return { error: `"${value}" uses http on a non-loopback host; use https` };
  }
  if (FORBIDDEN_SCHEMES.has(url.protocol)) return { error: `"${value}" uses a forbidden scheme` };
  // RFC 8252 §7.1: private-use schemes should be reverse-DNS names; we accept any other scheme
  // containing no credentials, because clients in the wild (cursor://, vscode://) use short names.
  return { kind: 'private-use' };
}

/** The loopback form of a URI without its port, or undefined when it is not loopback http. */
function withoutLoopbackPort(value: string): string | undefined {
  const url = URL.parse(value);
  if (url?.protocol !== 'http:' || !LOOPBACK_HOSTS.has(url.hostname)) return undefined;
  url.port = '';
  return url.href;
}

/** Whether `requested` may be used by a client that registered `registered`. */
export function redirectUriMatches(requested: string, registered: readonly string[]): boolean {
  if (registered.includes(requested)) return true;
  const requestedNoPort = withoutLoopbackPort(requested);
  if (requestedNoPort === undefined) return false;
  return registered.some((candidate) => withoutLoopbackPort(candidate) === requestedNoPort);
}

/** True when every redirect URI is loopback: shown as a warning on consent for CIMD clients. */
export function onlyLoopbackRedirects(uris: readonly string[]): boolean {
  return uris.length > 0 && uris.every((uri) => withoutLoopbackPort(uri) !== undefined);
}
