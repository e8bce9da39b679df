/**
 * What the admin commands show (docs/admin.md): registered clients, grants and users, read from the
 * one Storage with `list` (administration only, never a request path: Redis answers it with SCAN).
 *
 * Every summary is built from named fields, never by copying a stored payload: a client row holds its
 * secret (sealed), refresh-token rows are keyed by the token's hash, and neither may reach an
 * operator's terminal or a script's JSON (docs/tokens.md, "Tokens at rest").
 *
 * "Last used" needs no write of its own on the token path: every token issuance (the code exchange and
 * each refresh, which rotates) stores a refresh-token row under the grant with its `iat`, and those rows
 * live until they expire, consumed or not, so the newest `iat` of a grant's refresh tokens is when the
 * grant last got tokens. Grants and clients with no refresh token left show no such time.
 */
import type { AdapterPayload } from 'oidc-provider';
import { NS, type UserRecord } from '../storage/records.ts';
import type { Storage } from '../storage/types.ts';
import { ADAPTER_NS } from './stored-ids.ts';

/** Epoch seconds, as oidc-provider and the user records store times. */
export type EpochSeconds = number;

export interface ClientSummary {
  clientId: string;
  name: string | null;
  /** `registered`: dynamic client registration (RFC 7591), stored; `metadata-document`: a CIMD URL, fetched when used and never stored. */
  kind: 'registered' | 'metadata-document';
  /** Empty for metadata-document clients: their redirect URIs live in the document, not here. */
  redirectUris: string[];
  createdAt: EpochSeconds | null;
  /** When one of its grants last got tokens (login or refresh). */
  lastUsedAt: EpochSeconds | null;
  grants: number;
}

export interface GrantResource {
  /** The MCP server's canonical resource URI (the tokens' audience). */
  resource: string;
  scopes: string[];
}

export interface GrantSummary {
  grantId: string;
  userId: string;
  clientId: string;
  resources: GrantResource[];
  createdAt: EpochSeconds | null;
  expiresAt: EpochSeconds | null;
  /** When tokens were last issued under the grant: the code exchange, or the latest refresh. */
  lastTokenAt: EpochSeconds | null;
  /** The latest refresh; null when the grant was never refreshed. */
  lastRefreshAt: EpochSeconds | null;
  refreshes: number;
}

export interface UserSummary {
  userId: string;
  provider: string;
  email: string | null;
  name: string | null;
  groups: string[];
  createdAt: EpochSeconds | null;
  lastLoginAt: EpochSeconds | null;
  grants: number;
}

export interface GrantFilter {
  userIds?: readonly string[];
  clientId?: string;
}

/** A client_id that is an https URL is a Client ID Metadata Document (docs/clients.md). */
function isMetadataDocumentId(clientId: string): boolean {
  return clientId.startsWith('https://');
}

function text(value: unknown): string | null {
  return typeof value === 'string' && value !== '' ? value : null;
}

function seconds(value: unknown): EpochSeconds | null {
  return typeof value === 'number' && Number.isFinite(value) ? value : null;
}

function latest(a: EpochSeconds | null, b: EpochSeconds | null): EpochSeconds | null {
  if (a === null) return b;
  return b === null ? a : Math.max(a, b);
}

/** The id access tokens name: the payload's own `jti` when present, else the row key. */
function grantIdOf(key: string, grant: AdapterPayload): string {
  return typeof grant.jti === 'string' ? grant.jti : key;
}

/** Per grant id, from its refresh-token rows: the newest issue time, the newest refresh time, the number of refreshes. */
async function tokenActivity(
  storage: Storage,
): Promise<Map<string, { lastTokenAt: EpochSeconds | null; lastRefreshAt: EpochSeconds | null; refreshes: number }>> {
  const activity = new Map<string, { lastTokenAt: EpochSeconds | null; lastRefreshAt: EpochSeconds | null; refreshes: number }>();
  for (const { value } of await storage.list<AdapterPayload>(ADAPTER_NS.model('RefreshToken'))) {
    if (typeof value?.grantId !== 'string') continue;
    const entry = activity.get(value.grantId) ?? { lastTokenAt: null, lastRefreshAt: null, refreshes: 0 };
    const issued = seconds(value.iat);
    entry.lastTokenAt = latest(entry.lastTokenAt, issued);
    // `rotations` counts the refreshes that led to this token; the code exchange's token has none.
    const rotations = typeof value.rotations === 'number' ? value.rotations : 0;
    if (rotations > 0) entry.lastRefreshAt = latest(entry.lastRefreshAt, issued);
    entry.refreshes = Math.max(entry.refreshes, rotations);
    activity.set(value.grantId, entry);
  }
  return activity;
}

function resourcesOf(grant: AdapterPayload): GrantResource[] {
  const resources = grant.resources;
  if (resources === null || typeof resources !== 'object') return [];
  return Object.entries(resources as Record<string, unknown>)
    .filter((entry): entry is [string, string] => typeof entry[1] === 'string')
    .map(([resource, scope]) => ({ resource, scopes: scope.split(' ').filter(Boolean) }))
    .sort((a, b) => a.resource.localeCompare(b.resource));
}

/** Grants, oldest first; filtered by user(s) and/or client when asked. */
export async function listGrants(storage: Storage, filter: GrantFilter = {}): Promise<GrantSummary[]> {
  const activity = await tokenActivity(storage);
  const grants: GrantSummary[] = [];
  for (const { key, value } of await storage.list<AdapterPayload>(ADAPTER_NS.model('Grant'))) {
    if (value === null || typeof value !== 'object') continue;
    const userId = String(value.accountId ?? '');
    const clientId = String(value.clientId ?? '');
    if (filter.userIds && !filter.userIds.includes(userId)) continue;
    if (filter.clientId !== undefined && clientId !== filter.clientId) continue;
    const grantId = grantIdOf(key, value);
    const tokens = activity.get(grantId);
    grants.push({
      grantId,
      userId,
      clientId,
      resources: resourcesOf(value),
      createdAt: seconds(value.iat),
      expiresAt: seconds(value.exp),
      lastTokenAt: tokens?.lastTokenAt ?? null,
      lastRefreshAt: tokens?.lastRefreshAt ?? null,
      refreshes: tokens?.refreshes ?? 0,
    });
  }
  return grants.sort((a, b) => (a.createdAt ?? 0) - (b.createdAt ?? 0) || a.grantId.localeCompare(b.grantId));
}

/** One grant by id, or undefined. */
export async function findGrant(storage: Storage, grantId: string): Promise<GrantSummary | undefined> {
  const grant = await storage.get<AdapterPayload>(ADAPTER_NS.model('Grant'), grantId);
  if (grant === undefined) return undefined;
  return (await listGrants(storage, { userIds: [String(grant.accountId ?? '')], clientId: String(grant.clientId ?? '') })).find((g) => g.grantId === grantId);
}

/** Grants grouped by a key, so a summary per client or user costs one pass over the grants, not one per row. */
function groupBy(grants: readonly GrantSummary[], key: (grant: GrantSummary) => string): Map<string, GrantSummary[]> {
  const groups = new Map<string, GrantSummary[]>();
  for (const grant of grants) {
    const group = groups.get(key(grant));
    if (group) group.push(grant);
    else groups.set(key(grant), [grant]);
  }
  return groups;
}

function clientSummary(clientId: string, stored: AdapterPayload | undefined, own: readonly GrantSummary[]): ClientSummary {
  const redirectUris = Array.isArray(stored?.redirect_uris) ? stored.redirect_uris.filter((uri): uri is string => typeof uri === 'string') : [];
  return {
    clientId,
    name: text(stored?.client_name),
    kind: stored === undefined && isMetadataDocumentId(clientId) ? 'metadata-document' : 'registered',
    redirectUris,
    createdAt: seconds(stored?.client_id_issued_at),
    lastUsedAt: own.reduce<EpochSeconds | null>((last, grant) => latest(last, grant.lastTokenAt), null),
    grants: own.length,
  };
}

/**
 * Every client the store knows: registered clients, and metadata-document clients that hold a grant
 * (those are fetched, not stored, so a grant is their only trace). Newest first.
 */
export async function listClients(storage: Storage): Promise<ClientSummary[]> {
  const grants = await listGrants(storage);
  const stored = new Map<string, AdapterPayload>();
  for (const { key, value } of await storage.list<AdapterPayload>(ADAPTER_NS.model('Client'))) stored.set(text(value?.client_id) ?? key, value);
  const byClient = groupBy(grants, (grant) => grant.clientId);
  const ids = new Set([...stored.keys(), ...byClient.keys()]);
  return [...ids]
    .map((clientId) => clientSummary(clientId, stored.get(clientId), byClient.get(clientId) ?? []))
    .sort((a, b) => (b.createdAt ?? 0) - (a.createdAt ?? 0) || a.clientId.localeCompare(b.clientId));
}

/** One client (stored, or known by its grants), or undefined. */
export async function findClient(storage: Storage, clientId: string): Promise<{ summary: ClientSummary; stored: boolean } | undefined> {
  const stored = await storage.get<AdapterPayload>(ADAPTER_NS.model('Client'), clientId);
  const grants = await listGrants(storage, { clientId });
  if (stored === undefined && grants.length === 0) return undefined;
  return { summary: clientSummary(clientId, stored, grants), stored: stored !== undefined };
}

function userSummary(user: UserRecord, own: readonly GrantSummary[]): UserSummary {
  return {
    userId: user.id,
    provider: user.provider,
    email: text(user.email),
    name: text(user.name),
    groups: Array.isArray(user.groups) ? user.groups.filter((group): group is string => typeof group === 'string') : [],
    createdAt: seconds(user.createdAt),
    lastLoginAt: seconds(user.lastLoginAt),
    grants: own.length,
  };
}

/** Every user who signed in, most recent login first. */
export async function listUsers(storage: Storage): Promise<UserSummary[]> {
  const byUser = groupBy(await listGrants(storage), (grant) => grant.userId);
  const users = await storage.list<UserRecord>(NS.users);
  return users
    .filter(({ value }) => value !== null && typeof value === 'object' && typeof value.id === 'string')
    .map(({ value }) => userSummary(value, byUser.get(value.id) ?? []))
    .sort((a, b) => (b.lastLoginAt ?? 0) - (a.lastLoginAt ?? 0) || a.userId.localeCompare(b.userId));
}

export type UserMatch = { kind: 'found'; userIds: string[] } | { kind: 'unknown' } | { kind: 'ambiguous'; userIds: string[] };

/**
 * The user ids an operator means by `query`: a gateway user id (`<provider id>:<subject>`, also when
 * only its grants remain), else an email address, compared case-insensitively. One email may belong to
 * users of several identity providers; that answer is `ambiguous` so that nothing is revoked for a
 * person the operator did not name exactly.
 */
export async function resolveUser(storage: Storage, query: string): Promise<UserMatch> {
  if ((await storage.get<UserRecord>(NS.users, query)) !== undefined) return { kind: 'found', userIds: [query] };
  if ((await listGrants(storage, { userIds: [query] })).length > 0) return { kind: 'found', userIds: [query] };
  if (!query.includes('@')) return { kind: 'unknown' };
  const wanted = query.trim().toLowerCase();
  const matches = (await storage.list<UserRecord>(NS.users))
    .filter(({ value }) => typeof value?.email === 'string' && value.email.toLowerCase() === wanted)
    .map(({ value }) => value.id)
    .sort();
  if (matches.length === 0) return { kind: 'unknown' };
  return matches.length === 1 ? { kind: 'found', userIds: matches } : { kind: 'ambiguous', userIds: matches };
}
