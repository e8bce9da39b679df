/**
 * `servers[].toolAccess` on the request path: the screen (src/core/message-screen.ts) the proxy and the
 * stdio bridge run each POST's messages through, and the filter for list answers. The decisions are
 * src/policy/tool-rules.ts; this module maps MCP messages onto them (docs/policy.md).
 *
 * What is judged, from the one parse of the body the gateway already makes:
 * - `tools/call`, `prompts/get`: `params.name`; `resources/read`, `resources/subscribe` and
 *   `-/unsubscribe`: `params.uri`; `completion/complete`: the prompt or resource its `params.ref` names.
 * - `tools/list`, `prompts/list`, `resources/list`, `resources/templates/list`: let through, and their
 *   answers (every page, JSON or SSE) lose the entries the caller may not use.
 * - the 2026-07-28 `Mcp-Method`/`Mcp-Name` headers, where a client sends them, must agree with the body
 *   (MCP Streamable HTTP 2026-07-28, "Standard Request Headers" and "Server Validation": 400 with
 *   -32020 HeaderMismatch), so nothing in front of the gateway can be told one thing and the server another.
 *
 * A forbidden item is refused before the server sees the request: with the MCP step-up challenge (HTTP
 * 403, `WWW-Authenticate: Bearer error="insufficient_scope", scope="…", resource_metadata="…"`, MCP
 * Authorization 2026-07-28, "Scope Challenge Handling", RFC 6750 §3.1) when a token with more scopes would
 * be allowed, else with a JSON-RPC error (-32010). A batch with any forbidden member is refused whole,
 * so no part of it reaches the server.
 *
 * The identity comes from the user record the token check already holds (read once per token, cached
 * on it; no storage read on the hot path): groups, emails and organisations as the person's last
 * sign-in recorded them, as for `access`. Not put into the token, which stays small and shows clients
 * no IdP data. A changed rule applies with the next access token. The verdicts of all rules are
 * computed once per token and kept beside it (docs/policy.md).
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { JSONRPCMessage, RequestId } from '@modelcontextprotocol/sdk/types.js';
import { idKey, JsonRpcCode } from '../core/jsonrpc.ts';
import type { MessageScreen, ScreenRefusal } from '../core/message-screen.ts';
import { type ItemDecision, type ItemKind, type ToolAccessRules, ToolPolicy, type Verdicts } from '../policy/tool-rules.ts';
import { bearerChallenge } from './challenge.ts';
import type { GuardGrant } from './guard.ts';
import type { VerifiedToken } from './token-verifier.ts';

/** The list methods whose answers are filtered, and the result member each one lists. */
interface ListMember {
  member: string;
  kind: ItemKind;
  key: 'name' | 'uri' | 'uriTemplate';
}
const LIST_MEMBERS: ReadonlyMap<string, ListMember> = new Map<string, ListMember>([
  ['tools/list', { member: 'tools', kind: 'tool', key: 'name' }],
  ['prompts/list', { member: 'prompts', kind: 'prompt', key: 'name' }],
  ['resources/list', { member: 'resources', kind: 'resource', key: 'uri' }],
  ['resources/templates/list', { member: 'resourceTemplates', kind: 'resource', key: 'uriTemplate' }],
]);

/** Methods that use one named item, and where its name is. */
const ITEM_METHODS: ReadonlyMap<string, { kind: ItemKind; key: 'name' | 'uri' }> = new Map([
  ['tools/call', { kind: 'tool', key: 'name' }],
  ['prompts/get', { kind: 'prompt', key: 'name' }],
  ['resources/read', { kind: 'resource', key: 'uri' }],
  ['resources/subscribe', { kind: 'resource', key: 'uri' }],
  ['resources/unsubscribe', { kind: 'resource', key: 'uri' }],
]);

/** Scopes that are requests to the authorization server, never named in a challenge (docs/clients.md). */
const NOT_CHALLENGED = new Set(['offline_access']);

/** One server's compiled rules, with the per-token verdicts kept beside the token cache's entries. */
export class ServerToolAccess {
  readonly policy: ToolPolicy;
  readonly #resourceMetadataUrl: string;
  /** Scopes in the order challenges name them: the server's own, then the rules'. */
  readonly #scopeOrder: readonly string[];
  readonly #verdicts = new WeakMap<VerifiedToken, Verdicts>();

  constructor(rules: ToolAccessRules, options: { resourceMetadataUrl: string; scopes: readonly string[] }) {
    this.policy = new ToolPolicy(rules);
    this.#resourceMetadataUrl = options.resourceMetadataUrl;
    this.#scopeOrder = [...new Set([...options.scopes, ...this.policy.scopes()])];
  }

  /** A screen for one request of this grant; cheap (one small object), verdicts computed once per token. */
  screenFor(grant: GuardGrant): RequestScreen {
    let verdicts = this.#verdicts.get(grant.token);
    if (verdicts === undefined) {
      verdicts = this.policy.verdictsFor({ identity: grant.user, providerId: grant.user.provider, scopes: grant.token.scopes });
      this.#verdicts.set(grant.token, verdicts);
    }
    return new RequestScreen(this, verdicts, grant.token.scopes);
  }

  /**
   * The step-up challenge's `scope`: the token's scopes plus the missing ones. MCP 2026-07-28 no longer
   * requires a server to repeat the granted scopes ("Server Scope Management"), but allows it, and
   * clients that replace their scope with the challenged one (the TypeScript SDK 1.x does) would
   * otherwise lose the scopes they need to connect at all.
   */
  challengeScope(held: ReadonlySet<string>, missing: ReadonlySet<string>): string[] {
    // A token for this server carries only its scopes and OIDC ones; the OIDC ones are not repeated.
    return this.#scopeOrder.filter((scope) => (held.has(scope) || missing.has(scope)) && !NOT_CHALLENGED.has(scope));
  }

  get resourceMetadataUrl(): string {
    return this.#resourceMetadataUrl;
  }
}

interface Refused {
  id: RequestId | undefined;
  kind: ItemKind;
  name: string;
  decision: Exclude<ItemDecision, { allowed: true }>;
}

/** The screen of one request: which of its requests are list requests whose answers are filtered. */
export class RequestScreen implements MessageScreen {
  readonly #access: ServerToolAccess;
  readonly #verdicts: Verdicts;
  readonly #scopes: ReadonlySet<string>;
  /** idKey of a list request → the list method; created when the first one is admitted. */
  #lists: Map<string, string> | undefined;
  /** A GET stream: every answer that carries a list is filtered, whatever its id. */
  #anyList = false;

  constructor(access: ServerToolAccess, verdicts: Verdicts, scopes: ReadonlySet<string>) {
    this.#access = access;
    this.#verdicts = verdicts;
    this.#scopes = scopes;
  }

  get filtersResponses(): boolean {
    return this.#lists !== undefined || this.#anyList;
  }

  admitStream(): void {
    this.#anyList = true;
  }

  admit(messages: readonly JSONRPCMessage[], batch: boolean, headers: IncomingHttpHeaders): ScreenRefusal | undefined {
    const mismatch = batch ? batchHeaderProblem(headers) : headerMismatch(messages[0] as JSONRPCMessage, headers);
    if (mismatch !== undefined) return jsonRpcRefusal(400, batch ? null : (requestIdOf(messages[0]) ?? null), JsonRpcCode.HEADER_MISMATCH, mismatch);
    let refused: Refused[] | undefined;
    for (const message of messages) {
      const method = (message as { method?: unknown }).method;
      if (typeof method !== 'string') continue;
      const id = requestIdOf(message);
      if (LIST_MEMBERS.has(method)) {
        if (id === undefined) continue;
        if (this.#lists === undefined) this.#lists = new Map();
        this.#lists.set(idKey(id), method);
        continue;
      }
      const item = itemOf(method, (message as { params?: unknown }).params);
      if (item === undefined) continue;
      if (item === INVALID)
        return jsonRpcRefusal(
          200,
          id ?? null,
          JsonRpcCode.INVALID_PARAMS,
          `Invalid params: ${method} needs a string ${ITEM_METHODS.get(method)?.key ?? 'ref'}`,
        );
      const decision = this.#access.policy.decide(item.kind, item.name, this.#verdicts, this.#scopes);
      if (decision.allowed) continue;
      if (refused === undefined) refused = [];
      refused.push({ id, kind: item.kind, name: item.name, decision });
    }
    if (refused === undefined) return undefined;
    this.#lists = undefined;
    return this.#refusal(refused, messages, batch);
  }

  filterResponse(message: JSONRPCMessage): JSONRPCMessage {
    if (!this.filtersResponses) return message;
    const id = (message as { id?: unknown }).id;
    const result = (message as { result?: unknown }).result;
    if ((typeof id !== 'string' && typeof id !== 'number') || typeof result !== 'object' || result === null) return message;
    const method = this.#lists?.get(idKey(id));
    const list = method !== undefined ? LIST_MEMBERS.get(method) : this.#anyList ? listIn(result as Record<string, unknown>) : undefined;
    if (list === undefined) return message;
    const entries = (result as Record<string, unknown>)[list.member];
    if (!Array.isArray(entries)) return message;
    const policy = this.#access.policy;
    const kept = entries.filter((entry: unknown) => {
      const name = typeof entry === 'object' && entry !== null ? (entry as Record<string, unknown>)[list.key] : undefined;
      // An entry without a usable name cannot be judged, so it is not shown.
      return typeof name === 'string' && policy.allows(list.kind, name, this.#verdicts);
    });
    if (kept.length === entries.length) return message;
    return { ...message, result: { ...(result as Record<string, unknown>), [list.member]: kept } } as JSONRPCMessage;
  }

  /**
   * Step-up when every refusal is about scopes (one authorization with their union fixes them all),
   * a JSON-RPC error otherwise: a single error, or one per request of a batch.
   */
  #refusal(refused: readonly Refused[], messages: readonly JSONRPCMessage[], batch: boolean): ScreenRefusal {
    if (refused.every((entry) => entry.decision.reason === 'scope')) {
      const missing = new Set(refused.flatMap((entry) => (entry.decision.reason === 'scope' ? entry.decision.missingScopes : [])));
      const scopes = this.#access.challengeScope(this.#scopes, missing);
      const first = refused[0] as Refused;
      const description = `${KIND_WORDS[first.kind]} "${first.name}" needs the scope ${[...missing].join(' ')}`;
      const body = JSON.stringify({ error: 'insufficient_scope', error_description: description });
      return {
        status: 403,
        headers: {
          'www-authenticate': bearerChallenge({ resourceMetadataUrl: this.#access.resourceMetadataUrl, scopes, error: 'insufficient_scope' }),
          'content-type': 'application/json',
          'cache-control': 'no-store',
        },
        body,
      };
    }
    const reasons = new Map<string, string>();
    for (const entry of refused)
      if (entry.id !== undefined) reasons.set(idKey(entry.id), `Not permitted: ${KIND_WORDS[entry.kind].toLowerCase()} "${entry.name}"`);
    if (!batch) {
      const first = refused[0] as Refused;
      return jsonRpcRefusal(200, first.id ?? null, JsonRpcCode.NOT_PERMITTED, `Not permitted: ${KIND_WORDS[first.kind].toLowerCase()} "${first.name}"`);
    }
    const answers: unknown[] = [];
    for (const message of messages) {
      const id = requestIdOf(message);
      if (id === undefined || typeof (message as { method?: unknown }).method !== 'string') continue;
      const reason = reasons.get(idKey(id));
      answers.push({
        jsonrpc: '2.0',
        id,
        error: { code: JsonRpcCode.NOT_PERMITTED, message: reason ?? 'Not run: another request of this batch was not permitted' },
      });
    }
    return { status: 200, headers: JSON_HEADERS, body: JSON.stringify(answers) };
  }
}

/** The list a result carries, judged by its shape (for answers whose request is not known). */
function listIn(result: Record<string, unknown>): ListMember | undefined {
  for (const list of LIST_MEMBERS.values()) if (Array.isArray(result[list.member])) return list;
  return undefined;
}

const KIND_WORDS: Record<ItemKind, string> = { tool: 'Tool', prompt: 'Prompt', resource: 'Resource' };
const JSON_HEADERS = { 'content-type': 'application/json', 'cache-control': 'no-store' } as const;
const INVALID = Symbol('invalid params');

function jsonRpcRefusal(status: number, id: RequestId | null, code: number, message: string): ScreenRefusal {
  return { status, headers: JSON_HEADERS, body: JSON.stringify({ jsonrpc: '2.0', id, error: { code, message } }) };
}

function requestIdOf(message: JSONRPCMessage | undefined): RequestId | undefined {
  const id = (message as { id?: unknown } | undefined)?.id;
  return typeof id === 'string' || typeof id === 'number' ? id : undefined;
}

/** The item a method uses, undefined for methods that use none, INVALID when its name is missing. */
function itemOf(method: string, params: unknown): { kind: ItemKind; name: string } | typeof INVALID | undefined {
  const target = ITEM_METHODS.get(method);
  const record = typeof params === 'object' && params !== null ? (params as Record<string, unknown>) : undefined;
  if (target !== undefined) {
    const name = record?.[target.key];
    return typeof name === 'string' ? { kind: target.kind, name } : INVALID;
  }
  if (method !== 'completion/complete') return undefined;
  // Completions reveal a prompt's or resource template's arguments: judged like using the item.
  const ref = record?.ref as Record<string, unknown> | undefined;
  if (ref?.type === 'ref/prompt') return typeof ref.name === 'string' ? { kind: 'prompt', name: ref.name } : INVALID;
  if (ref?.type === 'ref/resource') return typeof ref.uri === 'string' ? { kind: 'resource', name: ref.uri } : INVALID;
  return INVALID;
}

/**
 * MCP Streamable HTTP 2026-07-28, "Server Validation": a present `Mcp-Method` must equal `method`, a
 * present `Mcp-Name` (after the `=?base64?…?=` sentinel is decoded, "Value Encoding") the name or
 * URI. Absent headers are accepted: clients of earlier revisions do not send them, and the gateway
 * decides on the body, never on the headers.
 */
function headerMismatch(message: JSONRPCMessage, headers: IncomingHttpHeaders): string | undefined {
  const methodHeader = single(headers['mcp-method']);
  const nameHeader = single(headers['mcp-name']);
  if (methodHeader === undefined && nameHeader === undefined) return undefined;
  const method = (message as { method?: unknown }).method;
  if (methodHeader !== undefined && methodHeader !== method) return 'Header mismatch: Mcp-Method does not match the body';
  if (nameHeader === undefined) return undefined;
  const target = typeof method === 'string' ? ITEM_METHODS.get(method) : undefined;
  const params = (message as { params?: Record<string, unknown> }).params;
  const name = target === undefined ? undefined : params?.[target.key];
  const decoded = decodeHeaderValue(nameHeader);
  if (decoded === undefined || decoded !== name) return 'Header mismatch: Mcp-Name does not match the body';
  return undefined;
}

/** A repeated header is sent as several values; it cannot match one body value. */
function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? '\u0000repeated' : value;
}

/** A batch cannot be described by one set of headers; sending them with one is a mismatch. */
function batchHeaderProblem(headers: IncomingHttpHeaders): string | undefined {
  return headers['mcp-method'] !== undefined || headers['mcp-name'] !== undefined ? 'Header mismatch: Mcp-Method/Mcp-Name sent with a batch' : undefined;
}

/** The `=?base64?…?=` sentinel form decoded (MCP Streamable HTTP 2026-07-28, "Value Encoding"). */
function decodeHeaderValue(value: string): string | undefined {
  if (!value.startsWith('=?base64?') || !value.endsWith('?=')) return value;
  const encoded = value.slice(9, -2);
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(encoded)) return undefined;
  return Buffer.from(encoded, 'base64').toString('utf8');
}
