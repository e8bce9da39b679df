/**
 * Filters the upstream's answers to list requests on their way back (`servers[].toolAccess`,
 * src/resource-server/tool-policy.ts decides what goes). The proxy's exchange (http-proxy.ts) does the
 * holding: a JSON answer is held whole like every finite answer (upstream-response.ts), but up to
 * `MAX_HELD_ANSWER_BYTES` instead of streaming past the usual cap, then checked and handed to
 * `filterBody`, and sent with its new length; an SSE answer is passed on event by event through
 * `events`, and only the events that carry a JSON-RPC message are parsed. Used only for a request that
 * carried a list request (or a GET stream) to a server with rules, so every other response streams
 * through untouched.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { StringDecoder } from 'node:string_decoder';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { ErrorCode, GatewayError } from '../core/errors.ts';
import type { MessageScreen } from '../core/message-screen.ts';
import { isEventStream, isJsonType } from './upstream-response.ts';

/**
 * A list answer larger than this is not held for filtering: the response fails closed (502). An
 * unfiltered list must never reach the client, so unlike other answers it cannot stream on unchecked
 * past `HELD_BODY_MAX_BYTES` (upstream-response.ts).
 */
export const MAX_HELD_ANSWER_BYTES = 16 * 1024 * 1024;

export class ListAnswerTooLarge extends GatewayError {
  constructor() {
    super(ErrorCode.PROXY_LIST_ANSWER_TOO_LARGE, `an answer to a list request exceeded ${MAX_HELD_ANSWER_BYTES} bytes`);
    this.name = 'ListAnswerTooLarge';
  }
}

export class ListAnswerFilter {
  readonly #screen: MessageScreen;
  /** `json`: filtered whole once the exchange has held it; `sse`: filtered per event. */
  mode: 'json' | 'sse' | undefined;
  #decoder: StringDecoder | undefined;
  #pending = '';

  constructor(screen: MessageScreen) {
    this.#screen = screen;
  }

  /** Chooses how to filter from the response headers; false when the body is neither JSON nor SSE. */
  begin(headers: IncomingHttpHeaders): boolean {
    const type = headers['content-type'];
    if (isJsonType(type)) this.mode = 'json';
    else if (isEventStream(type)) {
      this.mode = 'sse';
      this.#decoder = new StringDecoder('utf8');
    }
    return this.mode !== undefined;
  }

  /** JSON mode: the complete answer, filtered (the same bytes when nothing was removed or it is not JSON). */
  filterBody(body: Buffer): Buffer {
    let parsed: unknown;
    try {
      parsed = JSON.parse(body.toString('utf8'));
    } catch {
      // Not JSON: no client could read list entries out of it either.
      return body;
    }
    const filtered = this.#filterParsed(parsed);
    return filtered === parsed ? body : Buffer.from(JSON.stringify(filtered));
  }

  /**
   * SSE mode: the complete events in `chunk` (and before it), each filtered; an unfinished event waits
   * for the next chunk. Events end at a blank line (WHATWG HTML §9.2.6: CRLF, LF or CR line ends).
   */
  events(chunk: Buffer): Buffer {
    const text = this.#pending + (this.#decoder as StringDecoder).write(chunk);
    let out = '';
    let start = 0;
    for (;;) {
      const end = eventEnd(text, start);
      if (end === undefined) break;
      out += this.#filterEvent(text.slice(start, end.event)) + text.slice(end.event, end.next);
      start = end.next;
    }
    this.#pending = text.slice(start);
    return out.length === 0 ? EMPTY : Buffer.from(out, 'utf8');
  }

  #filterEvent(event: string): string {
    const lines = event.split(/\r\n|\r|\n/);
    const data: string[] = [];
    for (const line of lines) if (line.startsWith('data:')) data.push(line.slice(line[5] === ' ' ? 6 : 5));
    if (data.length === 0) return event;
    let parsed: unknown;
    try {
      parsed = JSON.parse(data.join('\n'));
    } catch {
      return event;
    }
    const filtered = this.#filterParsed(parsed);
    if (filtered === parsed) return event;
    const kept = lines.filter((line) => !line.startsWith('data:'));
    kept.push(`data: ${JSON.stringify(filtered)}`);
    return kept.join('\n');
  }

  #filterParsed(parsed: unknown): unknown {
    if (Array.isArray(parsed)) {
      let changed = false;
      const out = parsed.map((message) => {
        const filtered = this.#filterOne(message);
        if (filtered !== message) changed = true;
        return filtered;
      });
      return changed ? out : parsed;
    }
    return this.#filterOne(parsed);
  }

  #filterOne(message: unknown): unknown {
    if (typeof message !== 'object' || message === null) return message;
    return this.#screen.filterResponse(message as JSONRPCMessage);
  }
}

const EMPTY = Buffer.alloc(0);

/** Where the event starting at `from` ends (before its blank line) and the next one starts, if complete. */
function eventEnd(text: string, from: number): { event: number; next: number } | undefined {
  const match = /\r\n\r\n|\n\n|\r\r|\r\n\n|\n\r\n/g;
  match.lastIndex = from;
  const found = match.exec(text);
  if (found === null) return undefined;
  return { event: found.index, next: found.index + found[0].length };
}
