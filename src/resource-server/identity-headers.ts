/**
 * The identity hand-over to upstream MCP servers: configured request headers that carry who the user is.
 *
 * This is the deliberate, configured alternative to token passthrough (MCP Security Best Practices,
 * "Token Passthrough"): the upstream never sees the client's token, only these values.
 *
 * Encoding rule, so every value is a legal header value (RFC 9110 §5.5) and can be decoded losslessly:
 * printable ASCII passes unchanged except `%` and (in the groups list) `,`; everything else, including
 * CR/LF and non-ASCII, is percent-encoded as UTF-8. Upstreams apply `decodeURIComponent` to each value
 * (for groups, to each comma-separated item).
 */
import type { ServerConfig } from '../config/schema.ts';
import type { UserRecord } from '../storage/records.ts';

/** Encoded values derived from one user, computed once per token and reused by every request. */
export interface EncodedIdentity {
  subject: string;
  email: string | undefined;
  name: string | undefined;
  groups: string;
}

export type IdentityField = keyof EncodedIdentity;

/** The configured header names of one server, lowercased, with the field each one carries. */
export interface IdentityHeaderPlan {
  readonly entries: ReadonlyArray<readonly [header: string, field: IdentityField]>;
  /** Lowercased names; incoming headers with these names are dropped so a client cannot forge identity. */
  readonly names: ReadonlySet<string>;
}

export function identityHeaderPlan(config: ServerConfig['identityHeaders']): IdentityHeaderPlan {
  const entries: Array<readonly [string, IdentityField]> = [];
  for (const field of ['subject', 'email', 'name', 'groups'] as const) {
    const header = config[field];
    if (header) entries.push([header.toLowerCase(), field]);
  }
  return { entries, names: new Set(entries.map(([header]) => header)) };
}

export function encodeIdentity(user: UserRecord): EncodedIdentity {
  return {
    // The namespaced id (`<provider>:<subject>`) is unique across identity providers; it is also the
    // token's `sub`.
    subject: encodeHeaderValue(user.id, false),
    email: user.email === undefined ? undefined : encodeHeaderValue(user.email, false),
    name: user.name === undefined ? undefined : encodeHeaderValue(user.name, false),
    groups: user.groups.map((group) => encodeHeaderValue(group, true)).join(','),
  };
}

/** Appends the identity headers (name, value pairs) to a flat header list. */
export function appendIdentityHeaders(target: string[], plan: IdentityHeaderPlan, identity: EncodedIdentity): void {
  for (const [header, field] of plan.entries) {
    const value = identity[field];
    // An absent attribute sends no header rather than an empty one; groups may legitimately be empty.
    if (value !== undefined && (value !== '' || field === 'groups')) target.push(header, value);
  }
}

const SAFE = /^[\x20-\x24\x26-\x7e]*$/; // printable ASCII without '%'
const SAFE_ITEM = /^[\x20-\x24\x26-\x2b\x2d-\x7e]*$/; // ... and without ','

export function encodeHeaderValue(value: string, listItem: boolean): string {
  if ((listItem ? SAFE_ITEM : SAFE).test(value)) return value;
  let out = '';
  for (const char of value) {
    const code = char.codePointAt(0) ?? 0;
    if (code >= 0x20 && code <= 0x7e && char !== '%' && !(listItem && char === ',')) out += char;
    // A lone surrogate cannot be UTF-8 encoded (encodeURIComponent would throw): U+FFFD stands in.
    else out += encodeURIComponent(code >= 0xd800 && code <= 0xdfff ? '\uFFFD' : char);
  }
  return out;
}
