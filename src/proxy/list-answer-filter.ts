/**
 * Filters the upstream's answers to list requests on their way back (`servers[].toolAccess`,
 * src/resource-server/tool-policy.ts decides what goes): a JSON answer is held until it is complete,
 * filtered and sent with its new length; an SSE answer is passed on event by event, and only the
 * events that carry a JSON-RPC message are parsed. Used only for a POST that carried a list request
 * to a server with rules, so every other response streams through untouched.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { StringDecoder } from 'node:string_decoder';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { ErrorCode, GatewayError } from '../core/errors.ts';
import type { MessageScreen } from '../core/message-screen.ts';

/** A list answer larger than this is not held for filtering: the response fails closed (502). */
export const MAX_HELD_ANSWER_BYTES = 16 * 1024 * 1024;

export class ListAnswerTooLarge extends GatewayError {
  constructor() {
    super(ErrorCode.PROXY_LIST_ANSWER_TOO_LARGE, `an answer to a list request exceeded ${MAX_HELD_ANSWER_BYTES} bytes`);
    this.name = 'ListAnswerTooLarge';
  }
}

export class ListAnswerFilter {
  readonly #screen: MessageScreen;
  /** `json`: held whole; `sse`: filtered per event. */
  mode: 'json' | 'sse' | undefined;
  #chunks: Buffer[] = [];
  #held = 0;
  #decoder: StringDecoder | undefined;
  #pending = '';

  constructor(screen: MessageScreen) {
    this.#screen = screen;
  }

  /** Chooses how to filter from the response headers; false when the body is neither JSON nor SSE. */
  begin(headers: IncomingHttpHeaders): boolean {
    const type = String(headers['content-type'] ?? '').toLowerCase();
    if (type.startsWith('application/json')) this.mode = 'json';
    else if (type.startsWith('text/event-stream')) {
      this.mode = 'sse';
      this.#decoder = new StringDecoder('utf8');
    }
    return this.mode !== undefined;
  }

  /** JSON mode: keeps a chunk of the answer. */
  hold(chunk: Buffer): void {
    this.#held += chunk.byteLength;
    if (this.#held > MAX_HELD_ANSWER_BYTES) throw new ListAnswerTooLarge();
    this.#chunks.push(chunk);
  }

  /** JSON mode: the complete answer, filtered (unchanged bytes when nothing was removed or it is not JSON). */
  finish(): Buffer {
    const body = this.#chunks.length === 1 ? (this.#chunks[0] as Buffer) : Buffer.concat(this.#chunks, this.#held);
    this.#chunks = [];
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
