/**
 * Binding the consent to the browser that gave it.
 *
 * The MCP spec requires consent per client before a proxy with a static client ID sends anyone to the
 * third-party IdP (confused deputy). Consent alone is not enough: an attacker could approve in their own
 * browser and lure a victim to the IdP callback (login CSRF, RFC 9700 §4.7). So approving sets a signed
 * `__Host-` cookie (Secure, HttpOnly, SameSite=Lax, Path=/, no Domain: it cannot be planted by a sibling
 * subdomain), the pending login remembers a hash of it, and the callback refuses a browser without it.
 *
 * CSRF tokens for the consent and sign-in forms are an HMAC of the interaction id, so no server state is
 * needed and a token is useless for any other flow.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

export const BINDING_COOKIE = '__Host-mcp-gateway-consent';
const BINDING_TTL_SECONDS = 600;

function sign(secret: Buffer, purpose: string, value: string): string {
  return createHmac('sha256', secret).update(`${purpose}\0${value}`).digest('base64url');
}

function safeEqual(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}

export function csrfToken(secret: Buffer, flowId: string): string {
  return sign(secret, 'csrf', flowId);
}

export function csrfTokenValid(secret: Buffer, flowId: string, token: unknown): boolean {
  return typeof token === 'string' && safeEqual(token, csrfToken(secret, flowId));
}

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
  if (!value || !signature || !safeEqual(signature, sign(secret, 'binding', value))) return undefined;
  return value;
}

/** Reuses the browser's binding (so two tabs can log in at once) or makes a new one. */
export function issueBinding(req: IncomingMessage, secret: Buffer): { value: string; setCookie: string } {
  const value = readBinding(req, secret) ?? randomBytes(24).toString('base64url');
  const cookie = `${value}.${sign(secret, 'binding', value)}`;
  return {
    value,
    setCookie: `${BINDING_COOKIE}=${cookie}; Path=/; Max-Age=${BINDING_TTL_SECONDS}; Secure; HttpOnly; SameSite=Lax`,
  };
}

/** What the pending login stores: a hash, so a storage leak does not yield a usable cookie. */
export function bindingDigest(value: string): string {
  return createHash('sha256').update(value).digest('base64url');
}
