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
 */
import type { Adapter, AdapterPayload } from 'oidc-provider';
import { errors } from 'oidc-provider';
import type { Storage } from '../storage/types.ts';
import { markGrantRevoked } from './revoked-grants.ts';

export interface AdapterPolicy {
  unusedClientTtl: number;
  idleClientTtl: number;
}

/**
 * Called before a grant's stored tokens are deleted, so its access tokens (JWTs nobody stores) stop
 * too: src/authorization/grant-revocation.ts records the grant in the revocation list.
 */
export type GrantRevokedHook = (grantId: string) => Promise<void>;

const GRANTABLE = new Set(['AccessToken', 'AuthorizationCode', 'RefreshToken', 'DeviceCode', 'BackchannelAuthenticationRequest']);

function epochSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

/** oidc-provider constructs its adapter with the model name only, so storage and policy are bound here. */
export function createAdapterFactory(storage: Storage, policy: AdapterPolicy, grantRevoked?: GrantRevokedHook): new (name: string) => Adapter {
  return class BoundStorageAdapter extends StorageAdapter {
    constructor(name: string) {
      super(name, storage, policy, grantRevoked);
    }
  };
}

class StorageAdapter implements Adapter {
  readonly name: string;
  readonly namespace: string;
  readonly #storage: Storage;
  readonly #policy: AdapterPolicy;
  readonly #grantRevoked: GrantRevokedHook | undefined;

  constructor(name: string, storage: Storage, policy: AdapterPolicy, grantRevoked?: GrantRevokedHook) {
    this.name = name;
    this.namespace = `oidc:${name}`;
    this.#storage = storage;
    this.#policy = policy;
    this.#grantRevoked = grantRevoked;
  }

  async upsert(id: string, payload: AdapterPayload, expiresIn?: number): Promise<void> {
    let ttl = expiresIn;
    if (this.name === 'Client' && ttl === undefined) ttl = this.#policy.unusedClientTtl;
    await this.#storage.set(this.namespace, id, payload, ttl);
    await this.#index(id, payload, expiresIn);
    // A client that completed a login or refreshed is in use: keep it for the idle period.
    if ((this.name === 'Grant' || this.name === 'RefreshToken') && payload.clientId) {
      await this.#storage.expire('oidc:Client', payload.clientId, this.#policy.idleClientTtl);
    }
  }

  /** The secondary keys oidc-provider looks models up by: grant id (for revocation), session uid, user code. */
  async #index(id: string, payload: AdapterPayload, expiresIn: number | undefined): Promise<void> {
    if (GRANTABLE.has(this.name) && payload.grantId) {
      await this.#storage.addToSet('oidc:grant-index', payload.grantId, `${this.name}:${id}`, expiresIn);
    }
    if (this.name === 'Session' && payload.uid) {
      await this.#storage.set('oidc:session-uid', payload.uid, id, expiresIn);
    }
    if (this.name === 'DeviceCode' && payload.userCode) {
      await this.#storage.set('oidc:user-code', payload.userCode, id, expiresIn);
    }
  }

  async find(id: string): Promise<AdapterPayload | undefined> {
    return this.#storage.get<AdapterPayload>(this.namespace, id);
  }

  async findByUid(uid: string): Promise<AdapterPayload | undefined> {
    const id = await this.#storage.get<string>('oidc:session-uid', uid);
    return id === undefined ? undefined : this.find(id);
  }

  async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
    const id = await this.#storage.get<string>('oidc:user-code', userCode);
    return id === undefined ? undefined : this.find(id);
  }

  async consume(id: string): Promise<void> {
    const payload = await this.find(id);
    if (!payload) throw new errors.InvalidGrant('grant request is invalid');
    const remaining = payload.exp ? Math.max(1, payload.exp - epochSeconds()) : 3600;
    const claims = await this.#storage.increment('oidc:consumed', `${this.name}:${id}`, remaining);
    if (claims > 1) {
      // Lost the race: another request redeemed it first. Report it as reuse, which oidc-provider
      // answers with invalid_grant (and, for refresh tokens, the grant's revocation happens on the
      // request that sees `consumed` set).
      throw new errors.InvalidGrant('grant request is invalid');
    }
    await this.#storage.set(this.namespace, id, { ...payload, consumed: epochSeconds() }, remaining);
  }

  async destroy(id: string): Promise<void> {
    await this.#storage.delete(this.namespace, id);
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
    const members = await this.#storage.members('oidc:grant-index', grantId);
    await Promise.all(
      members.map((member) => {
        const separator = member.indexOf(':');
        return this.#storage.delete(`oidc:${member.slice(0, separator)}`, member.slice(separator + 1));
      }),
    );
    await this.#storage.delete('oidc:grant-index', grantId);
  }
}
