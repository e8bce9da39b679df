/**
 * The resource server's per-call step: rate limits (mcp-rate-limit.ts) and the audit line of each MCP
 * call (docs/audit.md, docs/rate-limits.md). One `McpCall` per request to an MCP route: the pipeline
 * (index.ts) tells it who was let in or why not, the proxy tells it the body's messages (through
 * `admit`, its one parse) and the upstream's status, and it writes one audit line when the response
 * closes, whatever happened in between.
 *
 * Hot-path cost: one object and one `close` listener per request; the line's fixed fields (`event`,
 * `server`) are bound once per route in a pino child, so only the per-call fields are serialised.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import type { ServerConfig } from '../config/schema.ts';
import { JsonRpcCode } from '../core/jsonrpc.ts';
import { type ArgumentAudit, argumentAudit, callAuditLogger, redactArguments } from '../observability/audit.ts';
import type { Logger } from '../observability/logger.ts';
import { type CallSubject, type CallTarget, callTarget, type McpRateLimitRule } from '../policy/mcp-rate-limit.ts';
import type { ForwardCall, ForwardRefusal } from '../proxy/http-proxy.ts';
import type { GuardGrant } from './guard.ts';
import type { McpRateLimiter, RateLimitVerdict } from './mcp-rate-limit.ts';

/** What every call to one server shares, built once at start-up. */
export interface McpCallSettings {
  readonly server: string;
  /** The audit logger's child with `event: 'mcp.call'` and `server` bound; undefined: no audit lines. */
  readonly audit: Logger | undefined;
  readonly args: ArgumentAudit;
  readonly rules: readonly McpRateLimitRule[];
  readonly limiter: McpRateLimiter | undefined;
}

export function mcpCallSettings(server: ServerConfig, audit: Logger | undefined, limiter: McpRateLimiter | undefined): McpCallSettings {
  return {
    server: server.name,
    audit: audit === undefined ? undefined : callAuditLogger(audit, server.name),
    args: argumentAudit(server.audit.includeArguments, server.audit.redactKeys),
    rules: server.rateLimits,
    limiter: server.rateLimits.length > 0 ? limiter : undefined,
  };
}

/**
 * Why the gateway refused a call: no token (`missing_token`), the Bearer error (RFC 6750 §3.1), a
 * browser Origin not allowed, a rate limit, a request the transport forbids, the IdP unreachable, a
 * `toolAccess` screen (tool-policy.ts: -32010, the step-up 403, a header mismatch), or an
 * `Mcp-Session-Id` of another user or client (session-owners.ts).
 */
export type DenialReason =
  | 'missing_token'
  | 'invalid_token'
  | 'invalid_request'
  | 'insufficient_scope'
  | 'origin'
  | 'rate_limited'
  | 'transport'
  | 'unavailable'
  | 'tool_access'
  | 'session';

export class McpCall implements ForwardCall {
  upstreamStatus: number | undefined = undefined;
  readonly #settings: McpCallSettings;
  readonly #req: IncomingMessage;
  readonly #res: ServerResponse;
  readonly #startedAt: number;
  readonly #bytesBefore: number;
  #who: CallSubject | undefined = undefined;
  #messages: JSONRPCMessage | JSONRPCMessage[] | undefined = undefined;
  #denied: DenialReason | undefined = undefined;
  #limit: McpRateLimitRule | undefined = undefined;

  constructor(settings: McpCallSettings, req: IncomingMessage, res: ServerResponse) {
    this.#settings = settings;
    this.#req = req;
    this.#res = res;
    this.#startedAt = performance.now();
    this.#bytesBefore = req.socket.bytesWritten;
    // `close` is emitted once per response; `on` spares the wrapper `once` would add.
    if (settings.audit !== undefined) res.on('close', this.#write);
  }

  /** The token check let the request in, as this user and client. */
  granted(grant: GuardGrant): void {
    this.#who = { user: grant.user.id, client: grant.token.claims.client_id };
  }

  /** The gateway refused the request before any upstream saw it. */
  denied(reason: DenialReason): void {
    this.#denied = reason;
  }

  /** ForwardCall: the `toolAccess` screen refused these messages, before any rate limit counted them. */
  deniedByScreen(messages: JSONRPCMessage | JSONRPCMessage[]): void {
    this.#messages = messages;
    this.#denied = 'tool_access';
  }

  /** ForwardCall: the body's messages are known; the route's rate limits decide. */
  admit(messages: JSONRPCMessage | JSONRPCMessage[] | undefined): ForwardRefusal | undefined | Promise<ForwardRefusal | undefined> {
    this.#messages = messages;
    const { limiter, rules, server } = this.#settings;
    const who = this.#who;
    if (limiter === undefined || who === undefined) return undefined;
    const body = messages ?? (this.#req.method === 'POST' ? 'unread' : undefined);
    const verdict = limiter.admit(server, rules, who, body);
    if (verdict === undefined) return undefined;
    return verdict instanceof Promise ? verdict.then((later) => this.#refusal(later)) : this.#refusal(verdict);
  }

  /** A method, not an arrow field: no closure per request for the rare refused call. */
  #refusal(verdict: RateLimitVerdict): ForwardRefusal | undefined {
    if (verdict === undefined) return undefined;
    this.#denied = 'rate_limited';
    this.#limit = verdict.rule;
    const seconds = verdict.retryAfterSeconds;
    return {
      status: 429,
      code: JsonRpcCode.RATE_LIMITED,
      message: `Rate limit exceeded (${describeRule(verdict.rule)}); retry after ${seconds} s`,
      // RFC 9110 §10.2.3 / RFC 6585 §4: whole seconds until the window that refused the call ends.
      headers: { 'retry-after': String(seconds) },
    };
  }

  /** The audit line, once the response is over (finished, refused, or cut by either side). */
  readonly #write = (): void => {
    const res = this.#res;
    const line: Record<string, unknown> = {
      user: this.#who?.user,
      client: this.#who?.client,
      httpMethod: this.#req.method,
      // `none`: the request ended before the gateway decided (a CORS preflight, a client that left
      // while its token was being checked).
      decision: this.#denied !== undefined ? 'denied' : this.#who !== undefined ? 'allowed' : 'none',
      reason: this.#denied,
      limit: this.#limit === undefined ? undefined : describeRule(this.#limit),
      status: res.statusCode,
      upstreamStatus: this.upstreamStatus,
      completed: res.writableFinished,
      latencyMs: Math.round((performance.now() - this.#startedAt) * 10) / 10,
      bytesIn: bodyBytes(this.#req),
      bytesOut: this.#req.socket.bytesWritten - this.#bytesBefore,
    };
    const messages = this.#messages;
    if (messages !== undefined) {
      if (Array.isArray(messages)) line.batch = messages.map((message) => this.#describe(message, {}));
      else this.#describe(messages, line);
    }
    (this.#settings.audit as Logger).info(line);
  };

  /** The message's method, id, what it names and (when the operator turned it on) its arguments. */
  #describe(message: JSONRPCMessage, into: Record<string, unknown>): Record<string, unknown> {
    const target: CallTarget | undefined = callTarget(message);
    if (target !== undefined) {
      into.rpcMethod = target.method;
      if (target.tool !== undefined) into.tool = target.tool;
      if (target.prompt !== undefined) into.prompt = target.prompt;
      if (target.resource !== undefined) into.resource = target.resource;
      if (this.#settings.args.include && (target.tool !== undefined || target.prompt !== undefined)) {
        const args = (message as { params?: { arguments?: unknown } }).params?.arguments;
        if (args !== undefined) into.arguments = redactArguments(args, this.#settings.args.redactKeys);
      }
    }
    const id = (message as { id?: unknown }).id;
    if (id !== undefined) into.rpcId = id;
    return into;
  }
}

function describeRule(rule: McpRateLimitRule): string {
  const tools = rule.per === 'user+tool' && rule.tools !== undefined && rule.tools.length > 0 ? ` ${rule.tools.join(',')}` : '';
  return `${rule.limit} per ${rule.windowSeconds} s per ${rule.per}${tools}`;
}

/** The request body's declared length (a chunked body's is not known without counting it). */
function bodyBytes(req: IncomingMessage): number | undefined {
  const length = req.headers['content-length'];
  return length === undefined ? undefined : Number(length);
}
