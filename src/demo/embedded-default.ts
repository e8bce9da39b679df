/**
 * The embedded default: what the gateway runs when the configuration names no MCP server or no
 * identity provider, so that a first `npm start` shows the whole login with nothing to set up.
 */
import { randomBytes } from 'node:crypto';
import { type LocalProviderConfig, localProviderSchema, type ServerConfig, serverSchema } from '../config/schema.ts';
import { ErrorCode, GatewayError } from '../core/errors.ts';
import { hashPassword } from '../idp/passwords.ts';
import { NS } from '../storage/records.ts';
import type { Storage } from '../storage/types.ts';

const DEMO_USER_RECORD = 'demo-user';

/** The demo MCP server shipped in the repo (src/demo/server.ts), at `/mcp`. */
export function demoServer(): ServerConfig {
  return serverSchema.parse({
    name: 'demo',
    path: '/mcp',
    upstream: { builtin: 'demo' },
    identityHeaders: { subject: 'x-user-id', email: 'x-user-email', name: 'x-user-name' },
  });
}

/**
 * A built-in local provider with one demo user, whose password is generated at first start, printed
 * once, and stored only as a hash (so a restart keeps the same password without ever showing it again).
 * Replicas starting together on one fresh store claim the record atomically: exactly one of them
 * stores (and prints) its password, and every other one adopts the winner's hash.
 */
export async function demoIdentityProvider(storage: Storage, announce: (line: string) => void): Promise<LocalProviderConfig> {
  let passwordHash = await storage.get<string>(NS.keys, DEMO_USER_RECORD);
  if (passwordHash === undefined) {
    const password = randomBytes(12).toString('base64url');
    const candidate = await hashPassword(password);
    if (await storage.setIfAbsent(NS.keys, DEMO_USER_RECORD, candidate)) {
      passwordHash = candidate;
      announce(
        `\nFirst start: created the demo user.\n  username: demo\n  password: ${password}\nThis password is shown only once. Configure identityProviders to use your own IdP.\n`,
      );
    } else {
      passwordHash = await storage.get<string>(NS.keys, DEMO_USER_RECORD);
      if (passwordHash === undefined) throw new GatewayError(ErrorCode.STORAGE_CORRUPT, 'the demo user record was claimed but cannot be read');
    }
  }
  return localProviderSchema.parse({
    type: 'local',
    displayName: 'Demo account',
    users: [{ username: 'demo', passwordHash, email: 'demo@example.com', name: 'Demo User' }],
  });
}
