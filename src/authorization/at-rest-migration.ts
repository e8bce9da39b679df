/**
 * The start-up migration to credentials at rest (docs/tokens.md, "Tokens at rest"): rows written by
 * gateways that stored oidc-provider's credentials as they are (refresh tokens and codes as row keys and
 * in `jti`, client secrets in the Client record) are rewritten the way the adapter now writes them
 * (src/authorization/adapter.ts), and the plaintext is deleted and scrubbed from the store's files.
 *
 * It runs at every start before the authorization server answers, and is safe to run twice or in two
 * replicas at once, because every step either claims its row atomically or is idempotent:
 * - a plaintext token row is claimed with `consume` (an atomic get-and-delete), so of two replicas
 *   exactly one rewrites it, and a row some replica already moved (and that may since have been used or
 *   revoked under its hashed key) is never written again. A crash between the claim and the write loses
 *   that one token (its user signs in again); it never leaves a plaintext copy behind.
 * - the hashed row is written with `setIfAbsent`, so it never overwrites a newer state of the token.
 * - sealing a client secret and deleting an old index entry give the same result whoever does it.
 *
 * Cost: one `list` per credential model and one of clients at every start. The sweep of the old grant
 * index (one read per grant) runs until it has once completed, recorded under `oidc:migration`, and
 * again whenever plaintext rows turn up (for example written by an older gateway after a downgrade).
 */
import type { AdapterPayload } from 'oidc-provider';
import type { Logger } from '../observability/logger.ts';
import { type SecretBox, SecretBoxError } from '../storage/secret-box.ts';
import type { Storage } from '../storage/types.ts';
import { GRANTABLE, openUserCodeTarget, sealUserCodeTarget } from './adapter.ts';
import { hasPlainClientSecret, openClientSecret, sealClientSecret, sealedWithOldKey } from './sealed-client-secret.ts';
import { ADAPTER_NS, CREDENTIAL_MODELS, hashedKey, isHashedKey, withoutCredential } from './stored-ids.ts';

export interface AtRestMigrationOptions {
  storage: Storage;
  secretBox: SecretBox;
  logger: Logger;
  /** A client whose secret is re-sealed counts as in use: it is kept for this long (registration.idleClientTtl). */
  idleClientTtl: number;
}

export interface AtRestMigrationReport {
  /** Token rows moved from their plaintext key to the hashed one. */
  tokens: number;
  /** Plaintext token rows found already expired, deleted without moving. */
  expired: number;
  /** Client records whose plaintext secret was sealed. */
  clients: number;
  /** Client records whose secret was sealed with an older encryption key, re-sealed with the current one. */
  clientsResealed: number;
  /** Client records whose sealed secret no configured key opens (left as they are; those clients cannot authenticate). */
  clientsUnreadable: number;
  /** Old index entries naming credentials in plaintext (grant index sets, consumed markers, user codes), deleted. */
  indexEntries: number;
  /** Whether the store's files were scrubbed of the deleted plaintext (undefined: nothing to scrub, or a backend without files). */
  scrubbed: boolean | undefined;
}

const MIGRATION_NS = 'oidc:migration';
const SWEEP_DONE_KEY = 'credentials-at-rest-v1';
const SCRUB_PENDING_KEY = 'scrub-pending';

/** oidc-provider's clock is the system one (`exp` is epoch seconds of real time), so the migration reads it too. */
function epochSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

export async function migrateCredentialsAtRest(options: AtRestMigrationOptions): Promise<AtRestMigrationReport> {
  const { storage, logger } = options;
  const report: AtRestMigrationReport = { tokens: 0, expired: 0, clients: 0, clientsResealed: 0, clientsUnreadable: 0, indexEntries: 0, scrubbed: undefined };
  const grantIds = new Set<string>();
  for (const model of CREDENTIAL_MODELS) await moveTokenRows(options, model, report, grantIds);
  await sealClientSecrets(options, report);

  const sweepDone = (await storage.get(MIGRATION_NS, SWEEP_DONE_KEY)) !== undefined;
  const plaintextFound = report.tokens + report.expired > 0;
  if (!sweepDone || plaintextFound) {
    for (const grant of await storage.list<AdapterPayload>(ADAPTER_NS.model('Grant'))) grantIds.add(grant.key);
    await sweepOldIndexes(options, grantIds, report);
    await storage.set(MIGRATION_NS, SWEEP_DONE_KEY, { completedAt: new Date().toISOString() });
  }

  const plaintextDeleted = report.tokens + report.expired + report.clients + report.indexEntries;
  if (plaintextDeleted > 0 || (await storage.get(MIGRATION_NS, SCRUB_PENDING_KEY)) !== undefined) report.scrubbed = await scrub(storage, logger);
  if (plaintextDeleted + report.clientsResealed > 0) {
    logger.info(
      { event: 'storage.credentials_migrated', ...report },
      'stored credentials migrated: tokens and codes under their hash, client secrets sealed with the current key, plaintext deleted',
    );
  }
  if (report.clientsUnreadable > 0) {
    logger.warn(
      { event: 'storage.client_secrets_unreadable', clients: report.clientsUnreadable },
      'some client secrets were sealed with an encryption key that is no longer configured; those clients cannot authenticate until they register again',
    );
  }
  return report;
}

/**
 * Scrubs the store's files of the deleted plaintext. Until that has once succeeded a pending mark stays
 * in storage, so a scrub that failed (the file busy, the disk too full for VACUUM's copy) is retried at
 * the next start rather than forgotten; a failure never stops the gateway from starting.
 */
async function scrub(storage: Storage, logger: Logger): Promise<boolean | undefined> {
  if (!storage.scrub) return undefined; // nothing on disk of its own
  await storage.set(MIGRATION_NS, SCRUB_PENDING_KEY, { since: new Date().toISOString() });
  let complete: boolean;
  try {
    complete = await storage.scrub();
  } catch (error) {
    logger.warn(
      { event: 'storage.scrub_failed', err: error },
      'could not scrub deleted plaintext credentials from the storage files; retried at the next start',
    );
    return false;
  }
  if (complete) {
    await storage.delete(MIGRATION_NS, SCRUB_PENDING_KEY);
  } else {
    logger.warn(
      { event: 'storage.scrub_incomplete' },
      'another process kept the storage file busy: deleted plaintext credentials may stay in the SQLite -wal file until the next start scrubs again',
    );
  }
  return complete;
}

/** Every plaintext-keyed row of one credential model, rewritten under its hashed key. */
async function moveTokenRows(options: AtRestMigrationOptions, model: string, report: AtRestMigrationReport, grantIds: Set<string>): Promise<void> {
  const { storage } = options;
  const namespace = ADAPTER_NS.model(model);
  for (const { key } of await storage.list(namespace)) {
    if (isHashedKey(key)) continue;
    // The claim: whoever gets the row moves it; anyone else finds nothing and moves on.
    const payload = await storage.consume<AdapterPayload>(namespace, key);
    if (payload === undefined) continue;
    const marker = await storage.consume<number>(ADAPTER_NS.consumed, `${model}:${key}`);
    // Its grant's old index entry names it in plaintext, moved or not.
    if (GRANTABLE.has(model) && payload.grantId) grantIds.add(payload.grantId);
    const remaining = typeof payload.exp === 'number' ? payload.exp - epochSeconds() : undefined;
    if (remaining !== undefined && remaining <= 0) {
      report.expired++;
      continue;
    }
    const stored = hashedKey(key);
    // Before the row, so a redemption racing with this migration never finds the row without its claim.
    if (marker !== undefined) await storage.setIfAbsent(ADAPTER_NS.consumed, `${model}:${stored}`, marker, remaining ?? 3600);
    await storage.setIfAbsent(namespace, stored, withoutCredential(model, payload), remaining);
    if (GRANTABLE.has(model) && payload.grantId) await storage.addToSet(ADAPTER_NS.grantTokens, payload.grantId, `${model}:${stored}`, remaining);
    if (model === 'DeviceCode' && payload.userCode) {
      await storage.set(ADAPTER_NS.userCode, payload.userCode, sealUserCodeTarget(options.secretBox, payload.userCode, key), remaining);
    }
    report.tokens++;
  }
}

/**
 * Client records holding a plaintext secret, or one sealed with an older encryption key, re-written
 * sealed with the current key (so an old key can be removed once rotated out, as README.md describes).
 * A record's remaining lifetime cannot be read back, so it is set to the idle lifetime; `expire` first
 * makes sure a client that has expired or been deleted meanwhile is not brought back.
 */
async function sealClientSecrets(options: AtRestMigrationOptions, report: AtRestMigrationReport): Promise<void> {
  const { storage, secretBox } = options;
  const namespace = ADAPTER_NS.model('Client');
  for (const { key, value } of await storage.list<AdapterPayload>(namespace)) {
    const plaintext = hasPlainClientSecret(value);
    let opened: AdapterPayload;
    try {
      if (!plaintext && !sealedWithOldKey(secretBox, value)) continue;
      opened = openClientSecret(secretBox, value);
    } catch (error) {
      if (!(error instanceof SecretBoxError)) throw error;
      report.clientsUnreadable++;
      continue;
    }
    if (!(await storage.expire(namespace, key, options.idleClientTtl))) continue;
    await storage.set(namespace, key, sealClientSecret(secretBox, opened), options.idleClientTtl);
    if (plaintext) report.clients++;
    else report.clientsResealed++;
  }
}

/**
 * Index entries of older gateways that name credentials in plaintext: the grant index (replaced by
 * ADAPTER_NS.grantTokens, whose members the moved rows were added to), consumed markers of rows no longer
 * there, and user-code entries holding a device code unsealed. Sets cannot be listed, so the old grant
 * index is reached through every grant id known: the Grant records and the moved tokens' grants.
 */
async function sweepOldIndexes(options: AtRestMigrationOptions, grantIds: Set<string>, report: AtRestMigrationReport): Promise<void> {
  const { storage, secretBox } = options;
  for (const grantId of grantIds) {
    if ((await storage.members(ADAPTER_NS.legacyGrantIndex, grantId)).length === 0) continue;
    await storage.delete(ADAPTER_NS.legacyGrantIndex, grantId);
    report.indexEntries++;
  }
  for (const { key } of await storage.list(ADAPTER_NS.consumed)) {
    const separator = key.indexOf(':');
    if (!CREDENTIAL_MODELS.has(key.slice(0, separator)) || isHashedKey(key.slice(separator + 1))) continue;
    await storage.delete(ADAPTER_NS.consumed, key);
    report.indexEntries++;
  }
  for (const { key, value } of await storage.list<string>(ADAPTER_NS.userCode)) {
    if (opensAsUserCodeTarget(secretBox, key, value)) continue;
    await storage.delete(ADAPTER_NS.userCode, key);
    report.indexEntries++;
  }
}

function opensAsUserCodeTarget(box: SecretBox, userCode: string, value: unknown): boolean {
  if (typeof value !== 'string') return false;
  try {
    openUserCodeTarget(box, userCode, value);
    return true;
  } catch {
    return false;
  }
}
