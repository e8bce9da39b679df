/** Reading small request bodies with a hard cap, for forms and JSON on the authorization side. */
import type { IncomingMessage } from 'node:http';
import { OAuthError } from './errors.ts';

export async function readBody(req: IncomingMessage, limitBytes: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (Number.isFinite(declared) && declared > limitBytes) {
    throw new OAuthError('invalid_request', 'request body too large', { status: 413 });
  }
  const chunks: Buffer[] = [];
  let received = 0;
  for await (const chunk of req) {
    received += (chunk as Buffer).length;
    if (received > limitBytes) throw new OAuthError('invalid_request', 'request body too large', { status: 413 });
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/** An `application/x-www-form-urlencoded` body as a plain record (last value wins). */
export async function readForm(req: IncomingMessage, limitBytes = 16 * 1024): Promise<Record<string, string>> {
  const type = req.headers['content-type'] ?? '';
  if (!type.toLowerCase().startsWith('application/x-www-form-urlencoded')) {
    throw new OAuthError('invalid_request', 'expected a form submission', { status: 415 });
  }
  const body = await readBody(req, limitBytes);
  return Object.fromEntries(new URLSearchParams(body.toString('utf8')));
}
