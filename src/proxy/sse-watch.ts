/**
 * Watches an SSE stream that answers a client's POST for the answers to its requests, so that when the
 * upstream closes the stream before answering them all, the client still gets an answer for each one.
 *
 * In Streamable HTTP the answer to a request sent in a POST comes on that POST's SSE stream (MCP
 * Transports, "Sending Messages to the Server"). An upstream that dies or ends the stream early leaves
 * the client waiting for its own request timeout (the MCP SDK's is 60 s). The gateway knows the ids it
 * forwarded; each one still unanswered when the stream ends gets a JSON-RPC error event instead.
 *
 * Not when the stream is resumable: once an event carried an `id`, the client can reconnect with
 * `Last-Event-ID` and the server replays what it missed (MCP Transports, "Resumability and
 * Redelivery"; a server may even close such a stream on purpose and let the client poll). An error from
 * the gateway would then end a request that could still succeed.
 *
 * The older HTTP+SSE transport (2024-11-05) answers every POST of a session on its one GET stream, so
 * a watch there is `persistent`: requests are added as their POSTs pass (`expect`), and the stream is
 * parsed for as long as it lasts (that transport is kept for old servers only; its cost is accepted).
 *
 * The watch only observes: chunks are passed on by the proxy as they arrive and are never held here.
 * It parses events with eventsource-parser (WHATWG HTML §9.2.6) and, unless persistent, stops parsing
 * as soon as every request is answered, so a stream costs nothing more after its answer.
 */
import type { RequestId } from '@modelcontextprotocol/sdk/types.js';
import { createParser, type EventSourceMessage, type EventSourceParser } from 'eventsource-parser';
import { idKey } from '../core/jsonrpc.ts';

const LF = 0x0a;
const CR = 0x0d;

export class SseAnswerWatch {
  /** Unanswered request ids by `idKey`. */
  readonly #unanswered = new Map<string, RequestId>();
  readonly #decoder = new TextDecoder();
  readonly #parser: EventSourceParser;
  #resumable = false;
  /** The last byte passed on: whether the client's parser is in the middle of a line. */
  #lastByte = LF;
  #sawBytes = false;
  readonly #persistent: boolean;

  constructor(ids: readonly RequestId[], options: { persistent?: boolean } = {}) {
    for (const id of ids) this.#unanswered.set(idKey(id), id);
    this.#persistent = options.persistent === true;
    this.#parser = createParser({ onEvent: this.#onEvent });
  }

  /** Requests just sent (persistent watches): their answers are due on this stream. */
  expect(ids: readonly RequestId[]): void {
    for (const id of ids) this.#unanswered.set(idKey(id), id);
  }

  /** Requests whose POST failed: the client already has its answer (the error). */
  forget(ids: readonly RequestId[]): void {
    for (const id of ids) this.#unanswered.delete(idKey(id));
  }

  /** Takes a chunk that was just passed on to the client. */
  push(chunk: Buffer): void {
    if ((this.#unanswered.size === 0 && !this.#persistent) || this.#resumable || chunk.byteLength === 0) return;
    this.#sawBytes = true;
    this.#lastByte = chunk[chunk.byteLength - 1]!;
    // `stream: true` keeps a UTF-8 character split across chunks whole.
    this.#parser.feed(this.#decoder.decode(chunk, { stream: true }));
  }

  /** Requests the client would otherwise wait for in vain (none once the stream is resumable). */
  get unanswered(): RequestId[] {
    return this.#resumable ? [] : [...this.#unanswered.values()];
  }

  /**
   * What to write before ending the client's stream: one JSON-RPC error event per unanswered request,
   * or '' when nothing is owed. When the stream broke in the middle of an event, that event is first
   * finished as an event of another type, which clients ignore (the MCP SDK and EventSource dispatch
   * only `message` events to JSON-RPC), so a half-received message is never handed to the client as
   * if it were whole.
   */
  closingEvents(code: number, message: string): string {
    const ids = this.unanswered;
    if (ids.length === 0) return '';
    let out = '';
    if (this.#sawBytes) {
      if (this.#lastByte !== LF && this.#lastByte !== CR) out += '\n';
      out += 'event: gateway-discarded\n\n';
    }
    for (const id of ids) out += `event: message\ndata: ${JSON.stringify({ jsonrpc: '2.0', id, error: { code, message } })}\n\n`;
    this.#unanswered.clear();
    return out;
  }

  readonly #onEvent = (event: EventSourceMessage): void => {
    if (event.id) {
      this.#resumable = true;
      return;
    }
    if (event.event !== undefined && event.event !== 'message') return;
    let value: unknown;
    try {
      value = JSON.parse(event.data);
    } catch {
      return; // not JSON-RPC: the client's parser will complain; nothing answered here
    }
    if (Array.isArray(value)) for (const item of value) this.#answered(item);
    else this.#answered(value);
  };

  #answered(value: unknown): void {
    if (typeof value !== 'object' || value === null || 'method' in value) return;
    const id = (value as { id?: unknown }).id;
    if ((typeof id === 'string' || typeof id === 'number') && ('result' in value || 'error' in value)) this.#unanswered.delete(idKey(id));
  }
}
