/**
 * CSRF tokens for the gateway's forms (consent, local sign-in): an HMAC of the form's purpose and the
 * flow it belongs to. No server state is needed, and a token minted for one form or flow never
 * verifies for another. The pages are not frameable and carry no CORS, so only the real page can
 * read the token it must post back.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export function hmac(secret: Buffer | string, purpose: string, value: string): string {
  return createHmac('sha256', secret).update(`${purpose}\0${value}`).digest('base64url');
}

export function constantTimeEqual(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}

export function csrfToken(secret: Buffer | string, purpose: string, flowId: string): string {
  return hmac(secret, `csrf:${purpose}`, flowId);
}

export function csrfTokenValid(secret: Buffer | string, purpose: string, flowId: string, token: unknown): boolean {
  return typeof token === 'string' && constantTimeEqual(token, csrfToken(secret, purpose, flowId));
}
