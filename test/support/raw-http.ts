/**
 * HTTP without a client library in between, for tests that look at exactly what went over the wire:
 * `postRaw()` sends a body as given and keeps status, headers and text as they came back (no redirect,
 * no decoding, a fresh connection each time); `readJsonBody()` is the other side, for a test upstream
 * that needs the JSON-RPC message it was sent (undefined when the body is not JSON).
 *
 *   const answer = await postRaw(`${base}/mcp`, { 'content-type': 'application/json' }, '{"jsonrpc":');
 *   assert.equal(answer.status, 400);
 */
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { request as httpRequest } from 'node:http';

export interface RawResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

export function postRaw(url: string, headers: Record<string, string>, body: string): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: 'POST', headers, agent: false }, (res) => {
      res.setEncoding('utf8');
      let text = '';
      res.on('data', (chunk: string) => {
        text += chunk;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

// biome-ignore lint/suspicious/noExplicitAny: a test upstream reads whatever JSON it was sent.
export function readJsonBody(req: IncomingMessage, then: (message: any) => void): void {
  const chunks: Buffer[] = [];
  req.on('data', (chunk: Buffer) => chunks.push(chunk));
  req.on('end', () => {
    try {
      then(JSON.parse(Buffer.concat(chunks).toString('utf8')));
    } catch {
      then(undefined);
    }
  });
}
