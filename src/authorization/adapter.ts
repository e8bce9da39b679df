/**
 * oidc-provider's persistence adapter, on the gateway's one Storage interface, so its models (clients,
 * grants, codes, refresh tokens, interactions, sessions) live wherever everything else lives and
 * survive restarts (SQLite) or are shared by replicas (Redis).
 *
 * Two behaviours beyond a plain key-value mapping:
 * - `consume` is atomic: of two concurrent redemptions of one authorization code or refresh token only
 *   one succeeds (RFC 6749 §10.5 single use; RFC 9700 §4.14.2 refresh token rotation). oidc-provider
 *   checks `consumed` before calling consume, which alone would race.
 * - Dynamically registered clients expire when unused and are kept alive by use (registration hygiene:
 *   Claude registers on every connection).
 *
 * Credentials are never stored as they are (docs/tokens.md, "Tokens at rest"): models keyed by a bearer
 * credential (refresh tokens, codes, …) are stored under its hash without it (src/authorization/stored-ids.ts),
 * and client secrets are sealed (src/authorization/sealed-client-secret.ts).
 */
import type { Adapter, AdapterPayload } from 'oidc-provider';
import { errors } from 'oidc-provider';
import { type Clock, systemClock } from '../core/clock.ts';
import type { SecretBox } from '../storage/secret-box.ts';
import type { Storage } from '../storage/types.ts';
import { ClientKeepAlive } from './client-keep-alive.ts';
import { markGrantRevoked } from './revoked-grants.ts';
import { openClientSecret, sealClientSecret } from './sealed-client-secret.ts';
import { ADAPTER_NS, storedKey, withCredential, withoutCredential } from './stored-ids.ts';

export interface AdapterPolicy {
  unusedClientTtl: number;
  idleClientTtl: number;
}

/**
 * Called before a grant's stored tokens are deleted, so its access tokens (JWTs nobody stores) stop
 * too: src/authorization/grant-revocation.ts records the grant in the revocation list.
 */
export type GrantRevokedHook = (grantId: string) => Promise<void>;

/** Models that belong to a grant and are revoked with it. */
export const GRANTABLE: ReadonlySet<string> = new Set(['AccessToken', 'AuthorizationCode', 'RefreshToken', 'DeviceCode', 'BackchannelAuthenticationRequest']);

function epochSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

/**
 * oidc-provider constructs its adapter with the model name only, so storage, policy and the SecretBox
 * (which seals client secrets and the user-code index) are bound here. `clock` times how often a
 * client in use has its expiry extended (src/authorization/client-keep-alive.ts), which every model's
 * adapter of one provider shares.
 */
export function createAdapterFactory(
  storage: Storage,
  policy: AdapterPolicy,
  secretBox: SecretBox,
  grantRevoked?: GrantRevokedHook,
  clock: Clock = systemClock,
): new (
  name: string,
) => Adapter {
  const keepAlive = new ClientKeepAlive(storage, clock, policy.idleClientTtl);
  return class BoundStorageAdapter extends StorageAdapter {
    constructor(name: string) {
      super(name, storage, policy, secretBox, keepAlive, grantRevoked);
    }
  };
}

class StorageAdapter implements Adapter {
  readonly name: string;
  readonly namespace: string;
  readonly #storage: Storage;
  readonly #policy: AdapterPolicy;
  readonly #secretBox: SecretBox;
  readonly #keepAlive: ClientKeepAlive;
  readonly #grantRevoked: GrantRevokedHook | undefined;

  constructor(name: string, storage: Storage, policy: AdapterPolicy, secretBox: SecretBox, keepAlive: ClientKeepAlive, grantRevoked?: GrantRevokedHook) {
    this.name = name;
    this.namespace = ADAPTER_NS.model(name);
    this.#storage = storage;
    this.#policy = policy;
    this.#secretBox = secretBox;
    this.#keepAlive = keepAlive;
    this.#grantRevoked = grantRevoked;
  }

  /** The row's key: the hash of the id when the id is a credential (src/authorization/stored-ids.ts). */
  #key(id: string): string {
    return storedKey(this.name, id);
  }

  /** What is written: no credential in the payload, the client secret sealed. */
  #toStored(payload: AdapterPayload): AdapterPayload {
    const stored = withoutCredential(this.name, payload);
    return this.name === 'Client' ? sealClientSecret(this.#secretBox, stored) : stored;
  }

  /** What oidc-provider gets back: `jti` restored from the id it asked for, the client secret opened. */
  #fromStored(id: string, stored: AdapterPayload): AdapterPayload {
    const payload = withCredential(this.name, id, stored);
    return this.name === 'Client' ? openClientSecret(this.#secretBox, payload) : payload;
  }

  async upsert(id: string, payload: AdapterPayload, expiresIn?: number): Promise<void> {
    let ttl = expiresIn;
    if (this.name === 'Client' && ttl === undefined) ttl = this.#policy.unusedClientTtl;
    const key = this.#key(id);
    await this.#storage.set(this.namespace, key, this.#toStored(payload), ttl);
    if (this.name === 'Client') this.#keepAlive.written(id);
    await this.#index(id, key, payload, expiresIn);
    // A client that completed a login or refreshed is in use: keep it for the idle period.
    if ((this.name === 'Grant' || this.name === 'RefreshToken') && typeof payload.clientId === 'string') {
      await this.#keepAlive.used(payload.clientId);
    }
  }

  /**
   * The secondary keys oidc-provider looks models up by: grant id (for revocation), session uid, user
   * code. None of them holds a credential: the grant index names stored keys, and the user-code index
   * (which must lead back to the device code itself) holds it sealed.
   */
  async #index(id: string, key: string, payload: AdapterPayload, expiresIn: number | undefined): Promise<void> {
    if (GRANTABLE.has(this.name) && payload.grantId) {
      await this.#storage.addToSet(ADAPTER_NS.grantTokens, payload.grantId, `${this.name}:${key}`, expiresIn);
    }
    if (this.name === 'Session' && payload.uid) {
      await this.#storage.set(ADAPTER_NS.sessionUid, payload.uid, id, expiresIn);
    }
    if (this.name === 'DeviceCode' && payload.userCode) {
      await this.#storage.set(ADAPTER_NS.userCode, payload.userCode, sealUserCodeTarget(this.#secretBox, payload.userCode, id), expiresIn);
    }
  }

  async find(id: string): Promise<AdapterPayload | undefined> {
    const stored = await this.#storage.get<AdapterPayload>(this.namespace, this.#key(id));
    return stored === undefined ? undefined : this.#fromStored(id, stored);
  }

  async findByUid(uid: string): Promise<AdapterPayload | undefined> {
    const id = await this.#storage.get<string>(ADAPTER_NS.sessionUid, uid);
    return id === undefined ? undefined : this.find(id);
  }

  async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
    const sealed = await this.#storage.get<string>(ADAPTER_NS.userCode, userCode);
    return sealed === undefined ? undefined : this.find(openUserCodeTarget(this.#secretBox, userCode, sealed));
  }

  async consume(id: string): Promise<void> {
    const key = this.#key(id);
    const stored = await this.#storage.get<AdapterPayload>(this.namespace, key);
    if (!stored) throw new errors.InvalidGrant('grant request is invalid');
    const remaining = stored.exp ? Math.max(1, stored.exp - epochSeconds()) : 3600;
    const claims = await this.#storage.increment(ADAPTER_NS.consumed, `${this.name}:${key}`, remaining);
    if (claims > 1) {
      // Lost the race: another request redeemed it first. Report it as reuse, which oidc-provider
      // answers with invalid_grant (and, for refresh tokens, the grant's revocation happens on the
      // request that sees `consumed` set).
      throw new errors.InvalidGrant('grant request is invalid');
    }
    await this.#storage.set(this.namespace, key, { ...stored, consumed: epochSeconds() }, remaining);
  }

  async destroy(id: string): Promise<void> {
    await this.#storage.delete(this.namespace, this.#key(id));
  }

  /**
   * oidc-provider calls this for every revocation of a grant: RFC 7009 revocation of its refresh token,
   * refresh-token or code reuse (RFC 9700 §4.14.2), and src/authorization/grant-revocation.ts.
   */
  async revokeByGrantId(grantId: string): Promise<void> {
    // Before anything is deleted: the revocation list entry (which is also the tombstone a token request
    // in flight checks, revoked-grants.ts) when the gateway gave one, else the tombstone alone.
    if (this.#grantRevoked) await this.#grantRevoked(grantId);
    else await markGrantRevoked(this.#storage, grantId);
    // Members are `<model>:<stored key>`, so each one names its row directly.
    const members = await this.#storage.members(ADAPTER_NS.grantTokens, grantId);
    await Promise.all(
      members.map((member) => {
        const separator = member.indexOf(':');
        return this.#storage.delete(ADAPTER_NS.model(member.slice(0, separator)), member.slice(separator + 1));
      }),
    );
    await this.#storage.delete(ADAPTER_NS.grantTokens, grantId);
  }
}

/** The user-code index must lead back to the device code (a credential), so it holds it sealed, bound to the user code. */
export function sealUserCodeTarget(box: SecretBox, userCode: string, deviceCode: string): string {
  return box.seal(deviceCode, `${ADAPTER_NS.userCode}:${userCode}`);
}

export function openUserCodeTarget(box: SecretBox, userCode: string, sealed: string): string {
  return box.open(sealed, `${ADAPTER_NS.userCode}:${userCode}`);
}
