/**
 * `mcp-oauth-gateway admin …`: clients, grants, users and signing keys of the configured storage
 * (SQLite or Redis), safe to run while gateways serve from it (docs/admin.md). Listing reads the
 * store; `clients delete` and `revoke` change it exactly as a gateway would (the same grant revoker),
 * and the running gateways refuse the revoked access tokens after their next revocation poll
 * (`tokens.revocationPollInterval`, src/storage/revocation-list.ts). Every change is one audit line
 * (./admin-audit.ts). No secret is ever printed: summaries carry named fields only
 * (src/authorization/admin-inventory.ts).
 */
import type { Writable } from 'node:stream';
import type { ParseArgsOptionsConfig } from 'node:util';
import { signingKeyPolicy } from '../app.ts';
import {
  type ClientSummary,
  findClient,
  findGrant,
  type GrantSummary,
  listClients,
  listGrants,
  listUsers,
  resolveUser,
  type UserSummary,
} from '../authorization/admin-inventory.ts';
import { removeClient } from '../authorization/client-removal.ts';
import { createGrantRevoker, type GrantRevoker } from '../authorization/grant-revocation.ts';
import { ConfigError, formatConfigError, loadConfig } from '../config/load.ts';
import type { GatewayConfig } from '../config/schema.ts';
import { type Clock, systemClock } from '../core/clock.ts';
import { ErrorCode, GatewayError, hasErrorCode } from '../core/errors.ts';
import { resourceFor } from '../core/resource-uri.ts';
import { demoServer } from '../demo/embedded-default.ts';
import type { Logger } from '../observability/logger.ts';
import { openStorage } from '../storage/index.ts';
import { RevocationList, revocationRetentionSeconds } from '../storage/revocation-list.ts';
import { loadEncryptionKeys, SecretBox } from '../storage/secret-box.ts';
import type { Storage } from '../storage/types.ts';
import { adminAuditLogger, currentActor } from './admin-audit.ts';
import { isoTime, json, table } from './admin-output.ts';
import { HELP_OPTION, parseCommandLine, reportUsageError, UsageError } from './args.ts';
import { type SigningKeyStatus, signingKeyStatuses } from './keys.ts';

const USAGE = `usage: mcp-oauth-gateway admin <command> [--json] [--config FILE | --config=FILE | -c FILE]

Clients, grants, users and signing keys in the storage FILE configures; safe while gateways run
(docs/admin.md).
  clients list                        registered clients: name, redirect URIs, created, last used
  clients delete <client_id>          delete a client's registration and revoke every grant it holds
  grants list [--user U] [--client C] grants: user, client, MCP server, scopes, last refresh
  users list                          people who signed in: email, identity provider, last login
  revoke --user U | --client C | --grant G
                                      revoke grants: their refresh tokens at once, their access tokens
                                      at every gateway within tokens.revocationPollInterval
  keys                                the token-signing keys and their state (as \`keys list\`)

U is a user id (<identity provider id>:<subject>) or an email address.
Client and grant ids may start with "-": write --client=ID, --grant=ID, and clients delete -- ID.
--json prints JSON on stdout instead of a table.
Deletions and revocations are written to the audit log on stderr (event admin.*).
Exit status: 0 done, 1 failed (configuration, storage), 2 usage error, 3 unknown client, user or grant.
`;

/** Exit status for an id the store does not know, so scripts can tell "already gone" from a failure. */
export const NOT_FOUND_EXIT = 3;

const COMMON = { config: { type: 'string', short: 'c' }, json: { type: 'boolean' }, ...HELP_OPTION } as const satisfies ParseArgsOptionsConfig;
const GRANT_FILTERS = { ...COMMON, user: { type: 'string' }, client: { type: 'string' } } as const satisfies ParseArgsOptionsConfig;
const REVOKE_TARGETS = { ...GRANT_FILTERS, grant: { type: 'string' } } as const satisfies ParseArgsOptionsConfig;

interface AdminIo {
  stdout: Writable;
  stderr: Writable;
  /** Defaults to the system clock; tests pass their own. */
  clock?: Clock;
  /** Defaults to ./admin-audit.ts's stderr logger; tests pass one they read. */
  auditLogger?: Logger;
  /** Environment for the config loader (MCP_GATEWAY_* overrides); defaults to process.env. */
  env?: NodeJS.ProcessEnv;
}

interface Command {
  name: string;
  options: ParseArgsOptionsConfig;
  positionals: readonly string[];
  run(context: AdminContext, values: Record<string, string | boolean | undefined>, positionals: string[]): Promise<number>;
}

const COMMANDS: Record<string, Command> = {
  'clients list': { name: 'clients list', options: COMMON, positionals: [], run: (context) => clientsList(context) },
  'clients delete': {
    name: 'clients delete',
    options: COMMON,
    positionals: ['<client_id>'],
    run: (context, _values, [clientId]) => clientsDelete(context, clientId!),
  },
  'grants list': {
    name: 'grants list',
    options: GRANT_FILTERS,
    positionals: [],
    run: (context, values) => grantsList(context, stringOption(values.user), stringOption(values.client)),
  },
  'users list': { name: 'users list', options: COMMON, positionals: [], run: (context) => usersList(context) },
  revoke: { name: 'revoke', options: REVOKE_TARGETS, positionals: [], run: (context, values) => revoke(context, values) },
  keys: { name: 'keys', options: COMMON, positionals: [], run: (context) => keys(context) },
};

const GROUPS: Record<string, readonly string[]> = { clients: ['list', 'delete'], grants: ['list'], users: ['list'] };

export async function runAdmin(args: string[], io: AdminIo): Promise<number> {
  const [first, second, ...afterSecond] = args;
  if (first === '--help' || first === '-h' || first === 'help') {
    io.stdout.write(USAGE);
    return 0;
  }
  let command: Command | undefined;
  let rest: string[];
  if (first !== undefined && GROUPS[first]) {
    const verbs = GROUPS[first]!;
    if (second === '--help' || second === '-h') {
      io.stdout.write(USAGE);
      return 0;
    }
    if (second === undefined || !verbs.includes(second)) {
      const problem = second === undefined ? `admin ${first} needs one of: ${verbs.join(', ')}` : `unknown admin ${first} subcommand "${second}"`;
      return reportUsageError(new UsageError(problem), USAGE, io.stderr);
    }
    command = COMMANDS[`${first} ${second}`];
    rest = afterSecond;
  } else {
    command = first === undefined ? undefined : COMMANDS[first];
    rest = args.slice(1);
  }
  if (command === undefined) {
    const problem = first === undefined ? 'admin needs a command' : `unknown admin command "${first}"`;
    return reportUsageError(new UsageError(problem), USAGE, io.stderr);
  }
  let values: Record<string, string | boolean | undefined>;
  let positionals: string[];
  try {
    ({ values, positionals } = parseCommandLine(rest, command.options, command.positionals) as {
      values: Record<string, string | boolean | undefined>;
      positionals: string[];
    });
  } catch (error) {
    if (error instanceof UsageError) return reportUsageError(error, USAGE, io.stderr);
    throw error;
  }
  if (values.help) {
    io.stdout.write(USAGE);
    return 0;
  }
  let config: GatewayConfig;
  try {
    config = await loadConfig({ path: stringOption(values.config), ...(io.env ? { env: io.env } : {}) });
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    io.stderr.write(`${formatConfigError(error)}\n`);
    return 1;
  }
  if (config.storage.type === 'memory') {
    const code = ErrorCode.CLI_ADMIN_STORAGE_NOT_SHARED;
    io.stderr.write(
      `mcp-oauth-gateway admin ${command.name}: storage.type is memory, which lives inside the gateway's process; admin commands need the gateway's sqlite file or redis (${code})\n`,
    );
    return 1;
  }
  const storage = await openStorage(config);
  const context = new AdminContext(config, storage, io, values.json === true);
  try {
    return await command.run(context, values, positionals);
  } catch (error) {
    if (error instanceof UsageError) return reportUsageError(error, USAGE, io.stderr);
    const reported = REPORTED.find((code) => hasErrorCode(error, code));
    if (reported === undefined) throw error;
    io.stderr.write(`mcp-oauth-gateway admin ${command.name}: ${(error as Error).message} (${reported})\n`);
    return reported === ErrorCode.CLI_ADMIN_NOT_FOUND ? NOT_FOUND_EXIT : 1;
  } finally {
    await storage.close();
  }
}

/** Failures an operator can act on, reported in one line with their code; anything else is a bug and propagates. */
const REPORTED = [
  ErrorCode.CLI_ADMIN_NOT_FOUND,
  ErrorCode.CLI_ADMIN_AMBIGUOUS_USER,
  ErrorCode.AUTHORIZATION_KEYS_MISSING,
  ErrorCode.SECRET_BOX_OPEN_FAILED,
  ErrorCode.SECRET_BOX_KEY_INVALID,
] as const;

function stringOption(value: string | boolean | undefined): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

class AdminContext {
  readonly config: GatewayConfig;
  readonly storage: Storage;
  readonly io: AdminIo;
  readonly asJson: boolean;
  #audit: Logger | undefined;

  constructor(config: GatewayConfig, storage: Storage, io: AdminIo, asJson: boolean) {
    this.config = config;
    this.storage = storage;
    this.io = io;
    this.asJson = asJson;
  }

  get clock(): Clock {
    return this.io.clock ?? systemClock;
  }

  print(humanText: string, value: unknown): number {
    this.io.stdout.write(this.asJson ? json(value) : humanText);
    return 0;
  }

  /** One audit line per change, with who made it. */
  audit(event: string, fields: Record<string, unknown>, message: string): void {
    this.#audit ??= this.io.auditLogger ?? adminAuditLogger(this.config);
    this.#audit.info({ event, ...currentActor(), ...fields }, message);
  }

  /**
   * The revoker the gateway itself uses, writing to the shared revocation list (never polled here).
   * Built only once something is known to exist to revoke: by then the gateway has run on this store,
   * so the encryption key the adapter needs is read, never generated on a store no gateway has used.
   */
  async revoker(): Promise<GrantRevoker> {
    const logger = this.#audit ?? this.io.auditLogger ?? adminAuditLogger(this.config);
    this.#audit = logger;
    return createGrantRevoker({
      storage: this.storage,
      secretBox: new SecretBox(await loadEncryptionKeys(this.config)),
      revocations: new RevocationList({
        storage: this.storage,
        retentionSeconds: revocationRetentionSeconds(this.config.tokens.accessTokenTtl),
        pollIntervalMs: this.config.tokens.revocationPollInterval * 1000,
        logger,
        clock: this.clock,
      }),
      adapterPolicy: this.config.registration,
      logger,
    });
  }

  /** MCP server names by canonical resource URI, to name a grant's server as the configuration does. */
  serverNames(): Map<string, string> {
    const servers = this.config.servers ?? [demoServer()];
    return new Map(servers.map((server) => [resourceFor(this.config.publicUrl, server), server.name]));
  }
}

function notFound(message: string): GatewayError {
  return new GatewayError(ErrorCode.CLI_ADMIN_NOT_FOUND, message);
}

// ---- clients ---------------------------------------------------------------------------------------

function clientJson(client: ClientSummary) {
  return {
    clientId: client.clientId,
    name: client.name,
    kind: client.kind,
    redirectUris: client.redirectUris,
    createdAt: isoTime(client.createdAt),
    lastUsedAt: isoTime(client.lastUsedAt),
    grants: client.grants,
  };
}

async function clientsList(context: AdminContext): Promise<number> {
  const clients = await listClients(context.storage);
  const human =
    clients.length === 0
      ? 'no clients\n'
      : table(
          ['CLIENT ID', 'NAME', 'KIND', 'REDIRECT URIS', 'CREATED', 'LAST USED', 'GRANTS'],
          clients.map((c) => [c.clientId, c.name, c.kind, c.redirectUris.join(' ') || null, isoTime(c.createdAt), isoTime(c.lastUsedAt), String(c.grants)]),
        );
  return context.print(human, { clients: clients.map(clientJson) });
}

async function clientsDelete(context: AdminContext, clientId: string): Promise<number> {
  const found = await findClient(context.storage, clientId);
  if (found === undefined) {
    const configured = context.config.introspection.clients.some((client) => client.clientId === clientId);
    throw notFound(
      configured ? `client "${clientId}" is configured in introspection.clients, not registered; remove it from the configuration` : `no client "${clientId}"`,
    );
  }
  const removal = await removeClient(context.storage, await context.revoker(), clientId);
  context.audit(
    'admin.client_deleted',
    {
      clientId,
      clientName: found.summary.name,
      registrationDeleted: removal.registrationDeleted,
      grantsRevoked: removal.revokedGrants.length,
      grantIds: removal.revokedGrants,
    },
    'admin deleted a client',
  );
  const refetched = found.summary.kind === 'metadata-document' ? ' (a metadata-document client: its document is fetched again if it is used again)' : '';
  const human =
    `${removal.registrationDeleted ? 'deleted client' : 'revoked the grants of client'} ${clientId}${refetched}; ` +
    `${removal.revokedGrants.length} grant(s) revoked.\n${PROPAGATION}`;
  return context.print(human, { clientId, registrationDeleted: removal.registrationDeleted, revokedGrants: removal.revokedGrants });
}

const PROPAGATION = 'refresh tokens are refused now; access tokens at every gateway within tokens.revocationPollInterval.\n';

// ---- grants and users ------------------------------------------------------------------------------

async function userIdsFor(context: AdminContext, query: string): Promise<string[]> {
  const match = await resolveUser(context.storage, query);
  if (match.kind === 'unknown') throw notFound(`no user "${query}" (a user id <identity provider id>:<subject>, or an email address)`);
  if (match.kind === 'ambiguous') {
    throw new GatewayError(ErrorCode.CLI_ADMIN_AMBIGUOUS_USER, `several users have the email ${query}: ${match.userIds.join(', ')}; name one by its user id`);
  }
  return match.userIds;
}

function grantJson(grant: GrantSummary, servers: Map<string, string>) {
  return {
    grantId: grant.grantId,
    userId: grant.userId,
    clientId: grant.clientId,
    resources: grant.resources.map((r) => ({ resource: r.resource, server: servers.get(r.resource) ?? null, scopes: r.scopes })),
    createdAt: isoTime(grant.createdAt),
    expiresAt: isoTime(grant.expiresAt),
    lastTokenAt: isoTime(grant.lastTokenAt),
    lastRefreshAt: isoTime(grant.lastRefreshAt),
    refreshes: grant.refreshes,
  };
}

async function grantsList(context: AdminContext, user: string | undefined, clientId: string | undefined): Promise<number> {
  const userIds = user === undefined ? undefined : await userIdsFor(context, user);
  const grants = await listGrants(context.storage, { ...(userIds ? { userIds } : {}), ...(clientId !== undefined ? { clientId } : {}) });
  const servers = context.serverNames();
  const human =
    grants.length === 0
      ? 'no grants\n'
      : table(
          ['GRANT ID', 'USER', 'CLIENT ID', 'SERVER', 'SCOPES', 'CREATED', 'LAST REFRESH'],
          grants.map((g) => [
            g.grantId,
            g.userId,
            g.clientId,
            g.resources.map((r) => servers.get(r.resource) ?? r.resource).join(' ') || null,
            [...new Set(g.resources.flatMap((r) => r.scopes))].join(' ') || null,
            isoTime(g.createdAt),
            isoTime(g.lastRefreshAt),
          ]),
        );
  return context.print(human, { grants: grants.map((grant) => grantJson(grant, servers)) });
}

function userJson(user: UserSummary) {
  return {
    userId: user.userId,
    provider: user.provider,
    email: user.email,
    name: user.name,
    groups: user.groups,
    createdAt: isoTime(user.createdAt),
    lastLoginAt: isoTime(user.lastLoginAt),
    grants: user.grants,
  };
}

async function usersList(context: AdminContext): Promise<number> {
  const users = await listUsers(context.storage);
  const human =
    users.length === 0
      ? 'no users\n'
      : table(
          ['USER ID', 'EMAIL', 'NAME', 'PROVIDER', 'FIRST LOGIN', 'LAST LOGIN', 'GRANTS'],
          users.map((u) => [u.userId, u.email, u.name, u.provider, isoTime(u.createdAt), isoTime(u.lastLoginAt), String(u.grants)]),
        );
  return context.print(human, { users: users.map(userJson) });
}

// ---- revoke ----------------------------------------------------------------------------------------

async function revoke(context: AdminContext, values: Record<string, string | boolean | undefined>): Promise<number> {
  const targets = (['user', 'client', 'grant'] as const).filter((name) => values[name] !== undefined);
  if (targets.length !== 1) throw new UsageError('revoke needs exactly one of --user, --client, --grant');
  const by = targets[0]!;
  const target = String(values[by]);
  let revoked: string[];
  let subject: Record<string, unknown>;
  if (by === 'user') {
    const userIds = await userIdsFor(context, target);
    revoked = [];
    // A user with no grant left needs no revoker (nor the encryption key it reads).
    if ((await listGrants(context.storage, { userIds })).length > 0) {
      const revoker = await context.revoker();
      for (const userId of userIds) revoked.push(...(await revoker.revokeUserGrants(userId)));
    }
    subject = { userId: userIds[0] };
  } else if (by === 'client') {
    const client = await findClient(context.storage, target);
    if (client === undefined) throw notFound(`no client "${target}"`);
    revoked = client.summary.grants > 0 ? await (await context.revoker()).revokeClientGrants(target) : [];
    subject = { clientId: target };
  } else {
    if ((await findGrant(context.storage, target)) === undefined) throw notFound(`no grant "${target}"`);
    await (await context.revoker()).revokeGrant(target, 'admin');
    revoked = [target];
    subject = { grantId: target };
  }
  context.audit('admin.grants_revoked', { by, ...subject, grantsRevoked: revoked.length, grantIds: revoked }, 'admin revoked grants');
  const named = Object.values(subject)[0];
  return context.print(`revoked ${revoked.length} grant(s) of ${by} ${named}.\n${revoked.length > 0 ? PROPAGATION : ''}`, {
    by,
    ...subject,
    revokedGrants: revoked,
  });
}

// ---- keys ------------------------------------------------------------------------------------------

function keyJson(key: SigningKeyStatus) {
  return {
    kid: key.kid,
    state: key.state,
    createdAt: isoTime(key.createdAt, 'milliseconds'),
    activatesAt: isoTime(key.activatesAt, 'milliseconds'),
    publishedUntil: isoTime(key.publishedUntil, 'milliseconds'),
  };
}

async function keys(context: AdminContext): Promise<number> {
  const statuses = await signingKeyStatuses({
    storage: context.storage,
    config: context.config,
    policy: signingKeyPolicy(context.config),
    clock: context.clock,
  });
  const human = table(
    ['KID', 'STATE', 'CREATED', 'SIGNS FROM', 'PUBLISHED UNTIL'],
    statuses.map((k) => [
      k.kid,
      k.state,
      isoTime(k.createdAt, 'milliseconds') ?? 'first start',
      isoTime(k.activatesAt, 'milliseconds') ?? 'first start',
      k.state === 'retired' ? (isoTime(k.publishedUntil, 'milliseconds') ?? 'unknown') : null,
    ]),
  );
  return context.print(human, { keys: statuses.map(keyJson) });
}
