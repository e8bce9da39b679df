/**
 * Binding the consent to the browser that gave it.
 *
 * The MCP spec requires consent per client before a proxy with a static client ID sends anyone to the
 * third-party IdP (confused deputy). Consent alone is not enough: an attacker could approve in their own
 * browser and lure a victim to the IdP callback (login CSRF, RFC 9700 §4.7). So approving sets a signed
 * `__Host-` cookie (Secure, HttpOnly, SameSite=Lax, Path=/, no Domain: it cannot be planted by a sibling
 * subdomain), the pending login remembers a hash of it, and the callback refuses a browser without it.
 *
 */
import { createHash, randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { constantTimeEqual, hmac } from '../http/csrf.ts';

export const BINDING_COOKIE = '__Host-mcp-gateway-consent';
const BINDING_TTL_SECONDS = 600;

export function readCookie(req: IncomingMessage, name: string): string | undefined {
  const header = req.headers.cookie;
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const index = part.indexOf('=');
    if (index > 0 && part.slice(0, index).trim() === name) return part.slice(index + 1).trim();
  }
  return undefined;
}

/** The browser's binding value when its cookie is present and authentic. */
export function readBinding(req: IncomingMessage, secret: Buffer): string | undefined {
  const cookie = readCookie(req, BINDING_COOKIE);
  if (!cookie) return undefined;
  const [value, signature] = cookie.split('.');
  if (!value || !signature || !constantTimeEqual(signature, hmac(secret, 'binding', value))) return undefined;
  return value;
}

/** Reuses the browser's binding (so two tabs can log in at once) or makes a new one. */
export function issueBinding(req: IncomingMessage, secret: Buffer): { value: string; setCookie: string } {
  const value = readBinding(req, secret) ?? randomBytes(24).toString('base64url');
  const cookie = `${value}.${hmac(secret, 'binding', value)}`;
  return {
    value,
    setCookie: `${BINDING_COOKIE}=${cookie}; Path=/; Max-Age=${BINDING_TTL_SECONDS}; Secure; HttpOnly; SameSite=Lax`,
  };
}

/** What the pending login stores: a hash, so a storage leak does not yield a usable cookie. */
export function bindingDigest(value: string): string {
  return createHash('sha256').update(value).digest('base64url');
}
