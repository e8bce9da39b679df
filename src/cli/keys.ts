/**
 * `keys list` and `keys rotate`: the token-signing keys in the configured storage (docs/keys.md),
 * safe to run while gateways use the same storage. `rotate` publishes a new key that signs after the
 * pre-publication time, exactly as the scheduled rotation does; the running gateways read it within
 * a minute. No private key, and no secret of the configuration, is ever printed.
 */
import type { Writable } from 'node:stream';
import { signingKeyPolicy } from '../app.ts';
import { readSealedKeys, readSigningKeys, updateSigningKeys } from '../authorization/keys.ts';
import { generateSigningJwk, type SigningKeyEntry, type SigningKeyPolicy, signingKeyState, withNextKey } from '../authorization/signing-keys.ts';
import { ConfigError, formatConfigError, loadConfig } from '../config/load.ts';
import type { GatewayConfig } from '../config/schema.ts';
import { type Clock, systemClock } from '../core/clock.ts';
import { ErrorCode, GatewayError, hasErrorCode } from '../core/errors.ts';
import { openStorage } from '../storage/index.ts';
import { loadEncryptionKeys, SecretBox } from '../storage/secret-box.ts';
import type { Storage } from '../storage/types.ts';
import { configPathArgument, USAGE_EXIT } from './args.ts';

const USAGE = `usage: mcp-oauth-gateway keys <list | rotate> [--config FILE | --config=FILE | -c FILE]

The ES256 keys that sign access tokens and ID tokens, in the storage FILE configures (docs/keys.md).
  list     each key: its kid, whether it signs, waits to sign or only verifies, and its times
  rotate   publish a new key now; it signs one hour later, once every JWKS cache knows it, and the
           current key stays published until the tokens it signed have expired. Running gateways
           pick the new key up within a minute. Does nothing while a new key is already waiting.
`;

/** How long `rotate` waits for a gateway that is writing the key record at the same moment. */
const LOCK_WAIT_MS = 10_000;

interface KeysIo {
  stdout: Writable;
  stderr: Writable;
  /** Defaults to the system clock; tests pass their own. */
  clock?: Clock;
}

export async function runKeys(args: string[], io: KeysIo): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === '--help' || sub === '-h') {
    io.stdout.write(USAGE);
    return 0;
  }
  if (sub !== 'list' && sub !== 'rotate') {
    io.stderr.write(`${sub === undefined ? 'keys needs a subcommand' : `unknown keys subcommand "${sub}"`}\n\n${USAGE}`);
    return USAGE_EXIT;
  }
  const parsed = configPathArgument(rest, USAGE, io);
  if ('exit' in parsed) return parsed.exit;
  let config: GatewayConfig;
  try {
    config = await loadConfig({ path: parsed.path });
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    io.stderr.write(`${formatConfigError(error)}\n`);
    return 1;
  }
  const storage = await openStorage(config);
  try {
    const context = { storage, config, policy: signingKeyPolicy(config), clock: io.clock ?? systemClock, io };
    return sub === 'list' ? await listKeys(context) : await rotateKeys(context);
  } catch (error) {
    if (!REPORTED.some((code) => hasErrorCode(error, code))) throw error;
    io.stderr.write(`mcp-oauth-gateway keys ${sub}: ${(error as Error).message} (${(error as GatewayError).code})\n`);
    return 1;
  } finally {
    await storage.close();
  }
}

/** Failures an operator can act on, reported in one line with their code; anything else is a bug and propagates. */
const REPORTED = [ErrorCode.AUTHORIZATION_KEYS_MISSING, ErrorCode.AUTHORIZATION_KEYS_BUSY, ErrorCode.SECRET_BOX_OPEN_FAILED] as const;

interface KeysContext {
  storage: Storage;
  config: GatewayConfig;
  policy: SigningKeyPolicy;
  clock: Clock;
  io: KeysIo;
}

/**
 * The encryption keys, once the record is known to exist: with no `secrets.encryptionKeys`
 * configured the gateway generated `<dataDir>/encryption.key` at its first start, and this command
 * must read that one rather than create another.
 */
async function secretBoxFor(context: Pick<KeysContext, 'config'>): Promise<SecretBox> {
  return new SecretBox(await loadEncryptionKeys(context.config));
}

async function listKeys(context: KeysContext): Promise<number> {
  const statuses = await signingKeyStatuses(context);
  context.io.stdout.write(`${statuses.map(describe).join('\n')}\n`);
  return 0;
}

/** One signing key as `keys list` and `admin keys` report it; times in epoch milliseconds, nothing secret. */
export interface SigningKeyStatus {
  kid: string;
  /** `active` signs; `next` is published and signs from `activatesAt`; `retired` only verifies. */
  state: 'active' | 'next' | 'retired';
  createdAt: number;
  activatesAt: number;
  /** When a retired key leaves the published set (null when that is not known, and for active and next keys). */
  publishedUntil: number | null;
}

/** The published signing keys and their state, from the storage `context` opened; throws when there are none yet. */
export async function signingKeyStatuses(context: Pick<KeysContext, 'storage' | 'config' | 'policy' | 'clock'>): Promise<SigningKeyStatus[]> {
  await requireRecord(context);
  const stored = await readSigningKeys(context.storage, await secretBoxFor(context));
  if (stored === undefined) throw missing();
  const state = signingKeyState(stored.signing, context.clock.now(), context.policy.retentionMs);
  return state.published.map((entry) => statusOf(entry, state.active, stored.signing, context.policy));
}

async function rotateKeys(context: KeysContext): Promise<number> {
  await requireRecord(context);
  const { policy, clock, io } = context;
  const update = await updateSigningKeys(
    context.storage,
    await secretBoxFor(context),
    async (current) => {
      const now = clock.now();
      if (signingKeyState(current, now, policy.retentionMs).pending) return undefined;
      return withNextKey(current, await generateSigningJwk(), now, policy);
    },
    LOCK_WAIT_MS,
  );
  if (update.outcome === 'busy') {
    throw new GatewayError(ErrorCode.AUTHORIZATION_KEYS_BUSY, 'another writer held the key record for 10 s; try again');
  }
  const state = signingKeyState(update.signing, clock.now(), policy.retentionMs);
  const pending = state.pending!;
  if (update.outcome === 'unchanged') {
    io.stdout.write(`key ${pending.jwk.kid} is already waiting to sign (from ${iso(pending.activatesAt)}); nothing changed\n`);
    return 0;
  }
  io.stdout.write(
    `published signing key ${pending.jwk.kid}; it signs from ${iso(pending.activatesAt)}.\n` +
      `key ${state.active.jwk.kid} signs until then and stays published until ${iso(pending.activatesAt + policy.retentionMs)}.\n` +
      'running gateways read the new key within a minute.\n',
  );
  return 0;
}

/** Checked before any encryption key is read, so a store the gateway never used gets a clear answer. */
async function requireRecord(context: Pick<KeysContext, 'storage'>): Promise<void> {
  if ((await readSealedKeys(context.storage)) === undefined) throw missing();
}

function missing(): GatewayError {
  return new GatewayError(ErrorCode.AUTHORIZATION_KEYS_MISSING, 'no signing keys are stored yet: start the gateway once on this storage first');
}

function statusOf(entry: SigningKeyEntry, active: SigningKeyEntry, all: readonly SigningKeyEntry[], policy: SigningKeyPolicy): SigningKeyStatus {
  const base = { kid: entry.jwk.kid ?? '(no kid)', createdAt: entry.createdAt, activatesAt: entry.activatesAt, publishedUntil: null };
  if (entry === active) return { ...base, state: 'active' };
  if (entry.activatesAt > active.activatesAt) return { ...base, state: 'next' };
  const successor = all.filter((other) => other.activatesAt > entry.activatesAt).sort((a, b) => a.activatesAt - b.activatesAt)[0];
  return { ...base, state: 'retired', publishedUntil: successor ? successor.activatesAt + policy.retentionMs : null };
}

/** One line per key: `<kid>  <state>  <times>`. */
function describe(status: SigningKeyStatus): string {
  if (status.state === 'active') return `${status.kid}  active    signs since ${iso(status.activatesAt)}`;
  if (status.state === 'next') return `${status.kid}  next      published ${iso(status.createdAt)}, signs from ${iso(status.activatesAt)}`;
  return `${status.kid}  retired   verifies only, published until ${status.publishedUntil === null ? 'unknown' : iso(status.publishedUntil)}`;
}

function iso(ms: number): string {
  return ms <= 0 ? 'the first start' : new Date(ms).toISOString();
}
