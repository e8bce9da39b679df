/**
 * Bodies read with a hard cap: every request body the gateway reads (authorization forms and JSON, MCP
 * requests to the proxy and to the stdio bridge) and the CIMD documents it fetches. Past the cap the
 * read fails with one error, `BodyTooLargeError`; where the body is an HTTP request the caller answers
 * 413 Content Too Large (RFC 9110 §15.5.14).
 *
 * When an incoming body is cut, the rest of it is drained, not kept, and the stream is not destroyed:
 * the socket must live long enough to carry the 413. Callers add `Connection: close` so the client
 * stops uploading.
 */
import { IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { ErrorCode, GatewayError } from '../core/errors.ts';
import { OAuthError } from './errors.ts';

/** A body longer than its cap. */
export class BodyTooLargeError extends GatewayError {
  readonly limitBytes: number;
  constructor(limitBytes: number) {
    super(ErrorCode.HTTP_BODY_TOO_LARGE, `body larger than ${limitBytes} bytes`);
    this.name = 'BodyTooLargeError';
    this.limitBytes = limitBytes;
  }
}

/**
 * True when the request's `Content-Length` already exceeds the cap, so it can be refused before a
 * byte is read. Node's parser has validated the number and never reads past it.
 */
export function declaredLengthExceeds(req: IncomingMessage, limitBytes: number): boolean {
  const declared = req.headers['content-length'];
  return declared !== undefined && Number(declared) > limitBytes;
}

/**
 * Collects a body of at most `limitBytes` and calls `done` once: with the body, with a
 * `BodyTooLargeError`, or with the stream's own error (a client that left mid-upload). Built on
 * stream events rather than promises because the proxy reads every small MCP request with it. For a
 * request whose declared length is already too long, `done` is called before this returns.
 */
export function collectBody(source: Readable, limitBytes: number, done: (error: Error | undefined, body: Buffer) => void): void {
  if (source instanceof IncomingMessage && declaredLengthExceeds(source, limitBytes)) {
    source.resume();
    done(new BodyTooLargeError(limitBytes), EMPTY);
    return;
  }
  const chunks: Buffer[] = [];
  let received = 0;
  let settled = false;
  const finish = (error: Error | undefined, body: Buffer): void => {
    if (settled) return;
    settled = true;
    source.removeListener('data', onData);
    source.removeListener('end', onEnd);
    done(error, body);
  };
  const onData = (chunk: Buffer): void => {
    received += chunk.byteLength;
    if (received <= limitBytes) {
      chunks.push(chunk);
      return;
    }
    finish(new BodyTooLargeError(limitBytes), EMPTY);
    // Drained, not kept: the socket stays usable for the 413.
    source.resume();
  };
  const onEnd = (): void => finish(undefined, chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, received));
  // Stays attached once settled: an error after the end must not be unhandled.
  const onError = (error: Error): void => finish(error, EMPTY);
  source.on('data', onData);
  source.once('end', onEnd);
  source.on('error', onError);
}

const EMPTY = Buffer.alloc(0);

/** `collectBody` as a promise. */
export function readCappedBody(source: Readable, limitBytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    collectBody(source, limitBytes, (error, body) => (error ? reject(error) : resolve(body)));
  });
}

/**
 * A fetched response body (a WHATWG stream, as `fetch` returns it), capped like a request body. Past
 * the cap the download is cancelled: unlike a request, there is nobody to answer.
 */
export async function readCappedResponse(body: ReadableStream<Uint8Array> | null, limitBytes: number): Promise<Buffer> {
  if (body === null) return EMPTY;
  const source = Readable.fromWeb(body as WebReadableStream<Uint8Array>);
  try {
    return await readCappedBody(source, limitBytes);
  } catch (error) {
    source.destroy();
    throw error;
  }
}

/**
 * A request body passed on chunk by chunk (for a body of unknown length, streamed upstream) that fails
 * with `BodyTooLargeError` once more than `limitBytes` went through. Cutting it does not destroy the
 * request, so the client's socket survives to receive the 413.
 */
export function cappedBodyStream(req: IncomingMessage, limitBytes: number): Readable {
  return Readable.from(cappedChunks(req, limitBytes), { objectMode: false });
}

async function* cappedChunks(req: IncomingMessage, limitBytes: number): AsyncGenerator<Buffer> {
  let received = 0;
  for await (const chunk of req.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
    received += chunk.byteLength;
    if (received > limitBytes) throw new BodyTooLargeError(limitBytes);
    yield chunk;
  }
}

/** A request body for the authorization server: past the cap, the OAuth error answered with 413. */
export async function readBody(req: IncomingMessage, limitBytes: number): Promise<Buffer> {
  try {
    return await readCappedBody(req, limitBytes);
  } catch (error) {
    if (error instanceof BodyTooLargeError) throw new OAuthError('invalid_request', 'request body too large', { status: 413, cause: error });
    throw error;
  }
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
