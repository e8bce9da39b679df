/**
 * Rewrites the `endpoint` event of an HTTP+SSE (2024-11-05) upstream stream on its way to the client.
 *
 * In that transport the server's first SSE event is `event: endpoint` whose data is the URL the client
 * must POST its messages to, usually relative to the SSE URL (`/messages?sessionId=…`). Passed through
 * unchanged it would send the client to the upstream (which it cannot reach, and whose address it must
 * not learn) or to a gateway path outside the route. Only the events up to and including that first
 * `endpoint` event are parsed (WHATWG HTML §9.2.6 event stream format); everything after it is passed
 * on as raw bytes, so the stream is never buffered.
 */
import { ErrorCode, GatewayError } from '../core/errors.ts';

/** The pre-endpoint part of a stream is small; anything longer is not an MCP HTTP+SSE server. */
const MAX_PREAMBLE_BYTES = 64 * 1024;

export class SseEndpointRewriter {
  readonly #rewrite: (endpoint: string) => string | undefined;
  /**
   * Bytes received and not yet passed on: the unfinished event block. Kept as bytes, never decoded
   * piecemeal: a UTF-8 character split across two reads would otherwise turn into two U+FFFD. Event
   * boundaries are ASCII line breaks, which never occur inside a multibyte UTF-8 sequence, so a block
   * cut at a boundary is always whole text.
   */
  #pending: Buffer = EMPTY;
  #done = false;
  #endpoint: string | undefined = undefined;

  /** `rewrite` maps the upstream's endpoint URL text to the one the client gets; undefined refuses it. */
  constructor(rewrite: (endpoint: string) => string | undefined) {
    this.#rewrite = rewrite;
  }

  /** True once the endpoint event has been rewritten; later chunks need not go through `push`. */
  get done(): boolean {
    return this.#done;
  }

  /** The endpoint the client was given, once `done`. */
  get endpoint(): string | undefined {
    return this.#endpoint;
  }

  /**
   * Takes the next chunk and returns what may be sent to the client now (possibly empty). Throws when
   * the endpoint cannot be rewritten or the preamble grows too long. Everything but the endpoint event
   * is passed on byte for byte.
   */
  push(chunk: Buffer): Buffer {
    if (this.#done) return chunk;
    let pending = this.#pending.byteLength === 0 ? chunk : Buffer.concat([this.#pending, chunk]);
    const out: Buffer[] = [];
    for (;;) {
      // latin1 maps each byte to one character, so indexes found in the text are byte offsets.
      const boundary = eventBoundary(pending.toString('latin1'));
      if (boundary === undefined) break;
      const data = endpointData(pending.subarray(0, boundary.start).toString('utf8'));
      if (data === undefined) {
        out.push(pending.subarray(0, boundary.end));
        pending = pending.subarray(boundary.end);
        continue;
      }
      const rewritten = this.#rewrite(data);
      if (rewritten === undefined) throw new SseEndpointError(`the upstream's endpoint URL is outside its route`);
      out.push(Buffer.from(`event: endpoint\ndata: ${rewritten}\n\n`, 'utf8'), pending.subarray(boundary.end));
      this.#pending = EMPTY;
      this.#done = true;
      this.#endpoint = rewritten;
      return Buffer.concat(out);
    }
    if (pending.byteLength > MAX_PREAMBLE_BYTES) throw new SseEndpointError('no endpoint event at the start of the SSE stream');
    // Copied: `pending` may be a view into undici's read buffer, which is reused.
    this.#pending = Buffer.from(pending);
    return out.length === 1 ? out[0]! : Buffer.concat(out);
  }
}

const EMPTY = Buffer.alloc(0);

/** The upstream's stream cannot be passed on: its endpoint is unroutable, or it never names one. */
export class SseEndpointError extends GatewayError {
  constructor(message: string) {
    super(ErrorCode.PROXY_SSE_ENDPOINT_INVALID, message);
    this.name = 'SseEndpointError';
  }
}

/** The first blank line (event end) in `text`: CRLF, LF or CR line endings, as the format allows. */
function eventBoundary(text: string): { start: number; end: number } | undefined {
  const match = /\r\n\r\n|\n\n|\r\r|\r\n\n|\n\r\n/.exec(text);
  return match ? { start: match.index, end: match.index + match[0].length } : undefined;
}

/** The data of an `endpoint` event block, or undefined for any other event. */
function endpointData(block: string): string | undefined {
  let event = 'message';
  const data: string[] = [];
  for (const line of block.split(/\r\n|\r|\n/)) {
    if (line === '' || line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') event = value;
    else if (field === 'data') data.push(value);
  }
  return event === 'endpoint' ? data.join('\n') : undefined;
}
