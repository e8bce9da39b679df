/**
 * MCP request counts and latencies, recorded on the hot path (ARCHITECTURE.md, "Performance").
 *
 * Recording a request costs a few plain-number additions: the resource server marks the response
 * with the server's recorder and a start time, the proxy (or the stdio bridge) notes the JSON-RPC
 * message it already parsed, and one shared `close` listener adds the request to its series. Nothing
 * here touches prom-client per request; `metrics.ts` turns the series into Prometheus samples when
 * the registry is scraped. Label values stay bounded: methods come from a fixed list of MCP methods,
 * tool names from the first ones seen per server (the rest count as `other`), statuses are HTTP codes.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

/** Latency buckets in seconds: MCP calls range from a cached `tools/list` to a minutes-long tool. */
export const MCP_DURATION_BUCKETS: readonly number[] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

/** Distinct tool names kept per server before further names count as `other`. */
export const MAX_TOOLS_PER_SERVER = 50;

/** The methods of the MCP specification a client sends; anything else is `other`. */
const MCP_METHODS = new Set([
  'initialize',
  'ping',
  'tools/list',
  'tools/call',
  'resources/list',
  'resources/templates/list',
  'resources/read',
  'resources/subscribe',
  'resources/unsubscribe',
  'prompts/list',
  'prompts/get',
  'completion/complete',
  'logging/setLevel',
  'tasks/get',
  'tasks/list',
  'tasks/result',
  'tasks/cancel',
  'notifications/initialized',
  'notifications/cancelled',
  'notifications/progress',
  'notifications/roots/list_changed',
]);

/** A tool name worth a label of its own: the MCP spec's name characters, at most 64 of them. */
const TOOL_NAME = /^[A-Za-z0-9_./-]{1,64}$/;

/** Set on the request by whoever parsed its JSON-RPC body (proxy, stdio bridge): the parsed message(s). */
const MESSAGE = Symbol('mcp-oauth-gateway.mcp-message');
/** Set on the response by the resource server: the server's recorder and the start time. */
const RECORDER = Symbol('mcp-oauth-gateway.mcp-recorder');
const STARTED = Symbol('mcp-oauth-gateway.mcp-started');
const REQUEST = Symbol('mcp-oauth-gateway.mcp-request');
/** Set on the response by whoever started an SSE body on it (proxy, stdio bridge). */
const STREAM = Symbol('mcp-oauth-gateway.event-stream');

interface Tagged {
  [STREAM]?: boolean;
  [RECORDER]?: ServerRequestRecorder;
  [STARTED]?: number;
  [REQUEST]?: IncomingMessage;
  [MESSAGE]?: unknown;
}

/** One label combination: how many requests, their total duration and the cumulative-bucket counts. */
export interface McpSeries {
  readonly server: string;
  readonly method: string;
  readonly tool: string;
  readonly status: string;
  count: number;
  sum: number;
  /** Per-bucket (non-cumulative) counts, one per MCP_DURATION_BUCKETS entry plus +Inf. */
  readonly buckets: number[];
}

/**
 * Notes the JSON-RPC message(s) of a request body the caller has already parsed; cheap (one property
 * write), and only read when the request ends.
 */
export function noteMcpMessage(req: IncomingMessage, parsed: unknown): void {
  (req as Tagged)[MESSAGE] = parsed;
}

/**
 * Marks a response whose body is an SSE stream, for the open-streams gauge and for the drain at
 * shutdown (src/http/in-flight.ts ends these cleanly rather than cutting them).
 */
export function markEventStream(res: ServerResponse): void {
  const tagged = res as ServerResponse & Tagged;
  if (tagged[STREAM] === true) return;
  tagged[STREAM] = true;
  const recorder = tagged[RECORDER];
  if (recorder !== undefined) recorder.openStreams++;
}

/** True once `markEventStream` was called for the response. */
export function isEventStream(res: ServerResponse): boolean {
  return (res as ServerResponse & Tagged)[STREAM] === true;
}

/** The recorder of every MCP server's requests; `forServer` is called once per server at start-up. */
export class McpRequestRecorder {
  readonly #servers = new Map<string, ServerRequestRecorder>();
  readonly #now: () => number;

  constructor(now: () => number = () => performance.now()) {
    this.#now = now;
  }

  forServer(name: string): ServerRequestRecorder {
    let recorder = this.#servers.get(name);
    if (recorder === undefined) {
      recorder = new ServerRequestRecorder(name, this.#now);
      this.#servers.set(name, recorder);
    }
    return recorder;
  }

  /** Open SSE responses per server, for the scrape. */
  *openStreams(): Iterable<[string, number]> {
    for (const server of this.#servers.values()) yield [server.name, server.openStreams];
  }

  /** Every series so far, for the scrape. */
  *series(): Iterable<McpSeries> {
    for (const server of this.#servers.values()) yield* server.series();
  }
}

export class ServerRequestRecorder {
  readonly name: string;
  /** SSE responses of this server open right now. */
  openStreams = 0;
  readonly #now: () => number;
  readonly #byMethod = new Map<string, Map<string, Map<string, McpSeries>>>();
  readonly #series: McpSeries[] = [];
  readonly #tools = new Set<string>();

  constructor(name: string, now: () => number) {
    this.name = name;
    this.#now = now;
  }

  /** The hot path: three property writes and one listener (a shared function, no closure). */
  begin(req: IncomingMessage, res: ServerResponse): void {
    const tagged = res as ServerResponse & Tagged;
    tagged[RECORDER] = this;
    tagged[STARTED] = this.#now();
    tagged[REQUEST] = req;
    res.on('close', onResponseClose);
  }

  /** @internal Adds one finished (or cut) response to its series. */
  end(res: ServerResponse, req: IncomingMessage, started: number): void {
    const seconds = (this.#now() - started) / 1000;
    const { method, tool } = this.#labelsOf(req);
    // A response cut before its end (client gone, stream broken) is not the status it started with.
    const status = res.writableFinished ? statusLabel(res.statusCode) : 'aborted';
    // Nested maps rather than one map on a joined key: no string is built per request.
    let byTool = this.#byMethod.get(method);
    if (byTool === undefined) {
      byTool = new Map();
      this.#byMethod.set(method, byTool);
    }
    let byStatus = byTool.get(tool);
    if (byStatus === undefined) {
      byStatus = new Map();
      byTool.set(tool, byStatus);
    }
    let series = byStatus.get(status);
    if (series === undefined) {
      series = { server: this.name, method, tool, status, count: 0, sum: 0, buckets: new Array(MCP_DURATION_BUCKETS.length + 1).fill(0) };
      byStatus.set(status, series);
      this.#series.push(series);
    }
    series.count++;
    series.sum += seconds;
    let bucket = 0;
    while (bucket < MCP_DURATION_BUCKETS.length && seconds > (MCP_DURATION_BUCKETS[bucket] as number)) bucket++;
    (series.buckets[bucket] as number)++;
  }

  series(): Iterable<McpSeries> {
    return this.#series;
  }

  #labelsOf(req: IncomingMessage): { method: string; tool: string } {
    const message = (req as Tagged)[MESSAGE];
    // Without a parsed body: a GET (the SSE stream), a DELETE (session end), or a body the gateway
    // streamed through unread (large or chunked).
    if (message === undefined || message === null || typeof message !== 'object') return { method: req.method ?? 'GET', tool: '' };
    if (Array.isArray(message)) return { method: 'batch', tool: '' };
    const { method, params } = message as { method?: unknown; params?: { name?: unknown } };
    if (typeof method !== 'string') return { method: 'response', tool: '' };
    if (!MCP_METHODS.has(method)) return { method: 'other', tool: '' };
    if (method !== 'tools/call') return { method, tool: '' };
    return { method, tool: this.#toolLabel(params?.name) };
  }

  /** The first MAX_TOOLS_PER_SERVER well-formed names seen get their own label. */
  #toolLabel(name: unknown): string {
    if (typeof name !== 'string') return 'other';
    if (this.#tools.has(name)) return name;
    if (this.#tools.size >= MAX_TOOLS_PER_SERVER || !TOOL_NAME.test(name)) return 'other';
    this.#tools.add(name);
    return name;
  }
}

function onResponseClose(this: ServerResponse): void {
  const tagged = this as ServerResponse & Tagged;
  const recorder = tagged[RECORDER];
  const req = tagged[REQUEST];
  if (recorder === undefined || req === undefined) return;
  tagged[RECORDER] = undefined;
  tagged[REQUEST] = undefined;
  if (tagged[STREAM] === true) recorder.openStreams--;
  recorder.end(this, req, tagged[STARTED] as number);
}

const STATUS_LABELS: string[] = [];
function statusLabel(code: number): string {
  if (code < 100 || code > 599) return 'other';
  const cached = STATUS_LABELS[code];
  if (cached !== undefined) return cached;
  const label = String(code);
  STATUS_LABELS[code] = label;
  return label;
}
