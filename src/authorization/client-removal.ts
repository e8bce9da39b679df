/**
 * Removing a client for good (`admin clients delete`, docs/admin.md): its registration and every grant
 * it holds, with their refresh tokens at once and their access tokens at every replica within one
 * revocation poll (src/storage/revocation-list.ts).
 */
import type { Storage } from '../storage/types.ts';
import type { GrantRevoker } from './grant-revocation.ts';
import { ADAPTER_NS, storedKey } from './stored-ids.ts';

export interface ClientRemoval {
  /** False when no registration was stored (a metadata-document client, or one already deleted). */
  registrationDeleted: boolean;
  revokedGrants: string[];
}

export async function removeClient(storage: Storage, grants: Pick<GrantRevoker, 'revokeClientGrants'>, clientId: string): Promise<ClientRemoval> {
  const namespace = ADAPTER_NS.model('Client');
  const key = storedKey('Client', clientId);
  const registrationDeleted = (await storage.get(namespace, key)) !== undefined;
  // The registration goes first: from then on the client can neither start a login nor redeem a code or
  // a refresh token (oidc-provider answers invalid_client), so no new grant can appear behind the
  // revocation that follows.
  if (registrationDeleted) await storage.delete(namespace, key);
  const revokedGrants = await grants.revokeClientGrants(clientId);
  return { registrationDeleted, revokedGrants };
}
