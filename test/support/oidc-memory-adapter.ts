/**
 * An oidc-provider storage adapter held in one Map per provider instance. oidc-provider's built-in
 * MemoryAdapter keeps ONE module-wide LRU (1000 entries) shared by every Provider in the process (the
 * upstream IdP and the gateway's own authorization server would share it in a test) and warns on
 * every start; this one is private to its provider and silent.
 */
import type { Adapter, AdapterFactory, AdapterPayload } from 'oidc-provider';

interface Entry {
  payload: AdapterPayload;
  expiresAt: number;
}

/** Creates a factory for `new Provider(issuer, { adapter })`; all models of one provider share `store`. */
export function createMemoryAdapter(): AdapterFactory {
  const store = new Map<string, Entry>();

  const read = (key: string): AdapterPayload | undefined => {
    const entry = store.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt <= Date.now()) {
      store.delete(key);
      return undefined;
    }
    return entry.payload;
  };

  return (model: string): Adapter => {
    const key = (id: string) => `${model}:${id}`;
    return {
      async upsert(id, payload, expiresIn) {
        store.set(key(id), { payload: { ...payload }, expiresAt: expiresIn ? Date.now() + expiresIn * 1000 : Infinity });
      },
      async find(id) {
        return read(key(id));
      },
      async findByUid(uid) {
        for (const [storedKey, entry] of store) {
          if (storedKey.startsWith(`${model}:`) && entry.payload.uid === uid) return read(storedKey);
        }
        return undefined;
      },
      async findByUserCode(userCode) {
        for (const [storedKey, entry] of store) {
          if (storedKey.startsWith(`${model}:`) && entry.payload.userCode === userCode) return read(storedKey);
        }
        return undefined;
      },
      async consume(id) {
        const entry = store.get(key(id));
        if (entry) entry.payload = { ...entry.payload, consumed: Math.floor(Date.now() / 1000) };
      },
      async destroy(id) {
        store.delete(key(id));
      },
      async revokeByGrantId(grantId) {
        for (const [storedKey, entry] of store) {
          if (entry.payload.grantId === grantId) store.delete(storedKey);
        }
      },
    };
  };
}
