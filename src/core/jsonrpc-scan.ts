/**
 * The JSON-RPC check of the proxy's hot path, done on the bytes: one pass that validates the JSON
 * syntax (RFC 8259) of a whole body and reads only the top-level members MCP decides on (`jsonrpc`,
 * `id`, `method`, whether `result` or `error` is there, where `params` lies), without building the
 * body's objects. `toString` + `JSON.parse` of every request and every answer cost the gateway several
 * microseconds per request (docs/performance.md, "Hot path"); this costs a fraction of that.
 *
 * It only ever answers "a good message (or batch), and these are its members". Anything else, every
 * invalid body and every unusual but valid one (escapes in a member name or in `jsonrpc`, `id` or
 * `method`, a member of interest given twice, nesting deeper than MAX_DEPTH), comes back as
 * `undefined`, and the caller runs the full parse (jsonrpc.ts `parseJsonRpcBody`), which decides and
 * words the error exactly as before. So the scanner must never accept what `JSON.parse` refuses
 * (test/unit/core/jsonrpc-scan.test.ts compares them on generated bodies), and may decline anything.
 *
 * Bytes of 0x80 and above are accepted inside strings without decoding: `Buffer.toString('utf8')`
 * turns an invalid sequence into U+FFFD and never swallows an ASCII byte, so the JSON structure the
 * full parse sees is the one seen here.
 */
import type { JSONRPCMessage, RequestId } from '@modelcontextprotocol/sdk/types.js';

/** Deeper bodies are left to the full parse (which has no limit of its own but the stack). */
const MAX_DEPTH = 64;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/**
 * One message the scanner accepted. `params` is parsed from its bytes only when read (a policy that
 * needs `tools/call`'s `params.name` pays for it; forwarding does not), and then kept.
 *
 * It is not a plain object: `params` is a getter on the prototype and a response's `result`/`error`
 * are placeholders, so a property read (`message.params?.arguments`, destructuring) behaves as on the
 * parsed message, while a spread or `Object.keys` would not. `JSON.stringify` is exact (`toJSON`), and
 * a consumer that copies or walks a message takes `toPlain()` (the parsed object, as
 * `parseJsonRpcBody` gives it). The consumers today (the `toolAccess` screen, the per-call step's rate
 * limits and audit arguments, the request metrics, the SSE watch's request ids) only read members.
 */
export class ScannedMessage {
  readonly jsonrpc = '2.0' as const;
  readonly #body: Buffer;
  readonly #paramsStart: number;
  readonly #paramsEnd: number;
  readonly #start: number;
  readonly #end: number;
  #params: unknown;
  #parsed = false;
  constructor(body: Buffer, paramsStart: number, paramsEnd: number, start: number, end: number) {
    this.#body = body;
    this.#paramsStart = paramsStart;
    this.#paramsEnd = paramsEnd;
    this.#start = start;
    this.#end = end;
  }

  /** The message parsed from its own bytes: a plain object, exactly what `JSON.parse` makes of it. */
  toPlain(): JSONRPCMessage {
    return JSON.parse(this.#body.toString('utf8', this.#start, this.#end)) as JSONRPCMessage;
  }

  /** `JSON.stringify(message)` writes the message itself, params and result included. */
  toJSON(): JSONRPCMessage {
    return this.toPlain();
  }
  get params(): Record<string, unknown> | undefined {
    if (!this.#parsed) {
      this.#parsed = true;
      this.#params = this.#paramsStart < 0 ? undefined : JSON.parse(this.#body.toString('utf8', this.#paramsStart, this.#paramsEnd));
    }
    return this.#params as Record<string, unknown> | undefined;
  }
}

/**
 * The body's message(s) when it is one JSON-RPC message MCP allows or a non-empty batch of them
 * (jsonrpc.ts `jsonRpcMessageProblem` gives the rules), else `undefined`: run the full parse.
 */
export function scanJsonRpcBody(body: Buffer): JSONRPCMessage | JSONRPCMessage[] | undefined {
  const scanner = new Scanner(body);
  try {
    return scanner.body();
  } catch (error) {
    if (error === DECLINE) return undefined;
    throw error;
  }
}

/** Thrown inside the scanner to give up; never escapes it. */
const DECLINE = Symbol('decline');

class Scanner {
  readonly #b: Buffer;
  #i = 0;
  constructor(body: Buffer) {
    this.#b = body;
  }

  body(): JSONRPCMessage | JSONRPCMessage[] | undefined {
    this.#ws();
    let result: JSONRPCMessage | JSONRPCMessage[];
    if (this.#b[this.#i] === 0x5b) {
      this.#i++;
      const batch: JSONRPCMessage[] = [];
      this.#ws();
      if (this.#b[this.#i] === 0x5d) throw DECLINE; // an empty batch is an error: the full parse words it
      for (;;) {
        this.#ws();
        batch.push(this.#message());
        this.#ws();
        const c = this.#b[this.#i++];
        if (c === 0x5d) break;
        if (c !== 0x2c) throw DECLINE;
      }
      result = batch;
    } else {
      result = this.#message();
    }
    this.#ws();
    if (this.#i !== this.#b.length) throw DECLINE;
    return result;
  }

  /** One top-level object, checked as a JSON-RPC message. */
  #message(): JSONRPCMessage {
    const b = this.#b;
    const messageStart = this.#i;
    if (b[messageStart] !== 0x7b) throw DECLINE;
    this.#i++;
    let jsonrpcOk = false;
    let seen = 0; // bit per member of interest, so a repeated one declines (JSON.parse keeps the last)
    let id: RequestId | null | undefined;
    let method: string | undefined;
    let paramsStart = -1;
    let paramsEnd = -1;
    let hasResult = false;
    let hasError = false;
    this.#ws();
    if (b[this.#i] === 0x7d) {
      this.#i++;
      throw DECLINE; // `{}`: not a message
    }
    for (;;) {
      this.#ws();
      const keyStart = this.#i + 1;
      if (!this.#string()) throw DECLINE; // escapes in a member name: let the full parse read it
      const key = memberOfInterest(b, keyStart, this.#i - 1);
      this.#ws();
      if (b[this.#i++] !== 0x3a) throw DECLINE;
      this.#ws();
      if (key !== 0) {
        if (seen & key) throw DECLINE;
        seen |= key;
      }
      const start = this.#i;
      const c = b[start];
      switch (key) {
        case JSONRPC:
          if (c !== QUOTE || !this.#string()) throw DECLINE;
          jsonrpcOk = this.#i - start === 5 && b[start + 1] === 0x32 && b[start + 2] === 0x2e && b[start + 3] === 0x30;
          break;
        case ID:
          if (c === QUOTE) {
            if (!this.#string()) throw DECLINE;
            id = b.toString('utf8', start + 1, this.#i - 1);
          } else if (c === 0x2d || (c !== undefined && c >= 0x30 && c <= 0x39)) {
            this.#number();
            const value = numberAt(b, start, this.#i);
            id = Number.isInteger(value) ? value : null;
            if (id === null) throw DECLINE; // a fractional id: the full parse refuses it
          } else if (c === 0x6e) {
            this.#value(1);
            id = null;
          } else throw DECLINE;
          break;
        case METHOD:
          if (c !== QUOTE || !this.#string()) throw DECLINE;
          method = b.toString('utf8', start + 1, this.#i - 1);
          break;
        case PARAMS:
          this.#value(1);
          paramsStart = start;
          paramsEnd = this.#i;
          break;
        case RESULT:
          this.#value(1);
          hasResult = true;
          break;
        case ERROR:
          this.#value(1);
          hasError = true;
          break;
        default:
          this.#value(1);
      }
      this.#ws();
      const next = b[this.#i++];
      if (next === 0x7d) break;
      if (next !== 0x2c) throw DECLINE;
    }
    if (!jsonrpcOk) throw DECLINE;
    const message = new ScannedMessage(b, paramsStart, paramsEnd, messageStart, this.#i) as ScannedMessage & Record<string, unknown>;
    if (method !== undefined) {
      // A request (string or integer id; MCP refuses null) or a notification (no id member at all).
      if (id === null) throw DECLINE;
      message.method = method;
      if (id !== undefined) message.id = id;
      return message as unknown as JSONRPCMessage;
    }
    if (seen & METHOD) throw DECLINE; // `method` present but not a string
    // A response: `result` with the request's id, or `error` with an id that may be null.
    if (hasResult ? id === undefined || id === null : !hasError || id === undefined) throw DECLINE;
    message.id = id;
    if (hasResult) message.result = RESULT_NOT_READ;
    else message.error = RESULT_NOT_READ;
    return message as unknown as JSONRPCMessage;
  }

  /** RFC 8259 §2 whitespace. */
  #ws(): void {
    const b = this.#b;
    let i = this.#i;
    for (let c = b[i]; c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09; c = b[++i]);
    this.#i = i;
  }

  /** A string at `#i` (which is `"`), left just past its closing quote. False when it holds escapes (all valid). */
  #string(): boolean {
    const b = this.#b;
    if (b[this.#i] !== QUOTE) throw DECLINE;
    let i = this.#i + 1;
    let plain = true;
    const end = b.length;
    for (;;) {
      if (i >= end) throw DECLINE;
      const c = b[i]!;
      if (c === QUOTE) break;
      if (c < 0x20) throw DECLINE; // RFC 8259 §7: control characters must be escaped
      if (c === BACKSLASH) {
        plain = false;
        const e = b[i + 1];
        if (e === 0x75) {
          for (let k = 2; k < 6; k++) if (!isHex(b[i + k])) throw DECLINE;
          i += 6;
          continue;
        }
        if (e !== QUOTE && e !== BACKSLASH && e !== 0x2f && e !== 0x62 && e !== 0x66 && e !== 0x6e && e !== 0x72 && e !== 0x74) throw DECLINE;
        i += 2;
        continue;
      }
      i++;
    }
    this.#i = i + 1;
    return plain;
  }

  /** RFC 8259 §6: -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)? */
  #number(): void {
    const b = this.#b;
    let i = this.#i;
    if (b[i] === 0x2d) i++;
    if (b[i] === 0x30) i++;
    else if (isDigit(b[i])) while (isDigit(b[i])) i++;
    else throw DECLINE;
    if (b[i] === 0x2e) {
      i++;
      if (!isDigit(b[i])) throw DECLINE;
      while (isDigit(b[i])) i++;
    }
    if (b[i] === 0x65 || b[i] === 0x45) {
      i++;
      if (b[i] === 0x2b || b[i] === 0x2d) i++;
      if (!isDigit(b[i])) throw DECLINE;
      while (isDigit(b[i])) i++;
    }
    this.#i = i;
  }

  /** Any JSON value at `#i`, validated and skipped. */
  #value(depth: number): void {
    if (depth > MAX_DEPTH) throw DECLINE;
    const b = this.#b;
    const c = b[this.#i];
    if (c === QUOTE) {
      this.#string();
    } else if (c === 0x7b) {
      this.#i++;
      this.#ws();
      if (b[this.#i] === 0x7d) {
        this.#i++;
        return;
      }
      for (;;) {
        this.#ws();
        this.#string();
        this.#ws();
        if (b[this.#i++] !== 0x3a) throw DECLINE;
        this.#ws();
        this.#value(depth + 1);
        this.#ws();
        const next = b[this.#i++];
        if (next === 0x7d) return;
        if (next !== 0x2c) throw DECLINE;
      }
    } else if (c === 0x5b) {
      this.#i++;
      this.#ws();
      if (b[this.#i] === 0x5d) {
        this.#i++;
        return;
      }
      for (;;) {
        this.#ws();
        this.#value(depth + 1);
        this.#ws();
        const next = b[this.#i++];
        if (next === 0x5d) return;
        if (next !== 0x2c) throw DECLINE;
      }
    } else if (c === 0x74) this.#literal(TRUE);
    else if (c === 0x66) this.#literal(FALSE);
    else if (c === 0x6e) this.#literal(NULL);
    else this.#number();
  }

  #literal(word: readonly number[]): void {
    const b = this.#b;
    for (let k = 0; k < word.length; k++) if (b[this.#i + k] !== word[k]) throw DECLINE;
    this.#i += word.length;
  }
}

/** What a response's `result`/`error` holds for the proxy: it only needs to know which one is there. */
const RESULT_NOT_READ = Object.freeze({});

const TRUE = [0x74, 0x72, 0x75, 0x65];
const FALSE = [0x66, 0x61, 0x6c, 0x73, 0x65];
const NULL = [0x6e, 0x75, 0x6c, 0x6c];

const JSONRPC = 1;
const ID = 2;
const METHOD = 4;
const PARAMS = 8;
const RESULT = 16;
const ERROR = 32;

/** The member of interest named by the (escape-free) key bytes [start, end), or 0. Compares bytes: no string is made. */
function memberOfInterest(b: Buffer, start: number, end: number): number {
  switch (end - start) {
    case 2:
      return b[start] === 0x69 && b[start + 1] === 0x64 ? ID : 0;
    case 5:
      return same(b, start, ERROR_NAME) ? ERROR : 0;
    case 6:
      return same(b, start, METHOD_NAME) ? METHOD : same(b, start, PARAMS_NAME) ? PARAMS : same(b, start, RESULT_NAME) ? RESULT : 0;
    case 7:
      return same(b, start, JSONRPC_NAME) ? JSONRPC : 0;
    default:
      return 0;
  }
}

const ERROR_NAME = bytes('error');
const METHOD_NAME = bytes('method');
const PARAMS_NAME = bytes('params');
const RESULT_NAME = bytes('result');
const JSONRPC_NAME = bytes('jsonrpc');

function bytes(text: string): Uint8Array {
  return Uint8Array.from(text, (char) => char.charCodeAt(0));
}

function same(b: Buffer, start: number, name: Uint8Array): boolean {
  for (let k = 0; k < name.length; k++) if (b[start + k] !== name[k]) return false;
  return true;
}

/**
 * An integer id of up to 15 digits (no fraction or exponent) read from its bytes; anything else
 * through `Number`, which reads a JSON number as JSON.parse does.
 */
function numberAt(b: Buffer, start: number, end: number): number {
  let k = b[start] === 0x2d ? start + 1 : start;
  if (end - k > 15) return Number(b.toString('latin1', start, end));
  let value = 0;
  for (; k < end; k++) {
    const c = b[k]!;
    if (c < 0x30 || c > 0x39) return Number(b.toString('latin1', start, end));
    value = value * 10 + (c - 0x30);
  }
  return b[start] === 0x2d ? -value : value;
}

function isDigit(c: number | undefined): boolean {
  return c !== undefined && c >= 0x30 && c <= 0x39;
}

function isHex(c: number | undefined): boolean {
  return c !== undefined && ((c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66));
}
