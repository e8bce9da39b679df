/**
 * Micro-benchmark of the whole hot-path token guard (`guard.check` on a cached token whose user is
 * known), with a fresh `Authorization` string per check as node:http hands one to every request, so
 * the string's hash and the b64token check are paid as they are in production. Prints the best and
 * median nanoseconds of CPU time (process.cpuUsage, so a busy machine does not inflate it) per check. Usage: `node bench/guard-check.ts [--rounds 9]`.
 */
import { exportJWK, generateKeyPair } from 'jose';
import { createLogger } from '../src/observability/logger.ts';
import { createResourceGuard, type ProtectedServer } from '../src/resource-server/guard.ts';
import { identityHeaderPlan } from '../src/resource-server/identity-headers.ts';
import { createTokenVerifier } from '../src/resource-server/token-verifier.ts';
import { signAccessToken } from '../test/support/access-tokens.ts';
import { benchArgs } from './harness.ts';

const ROUNDS = Number(benchArgs().get('rounds') ?? 9);
const CHECKS = 200_000;
const ISSUER = 'https://gw.example.com';
const RESOURCE = 'https://gw.example.com/mcp';

const pair = await generateKeyPair('ES256');
const publicJwk = { ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
const token = await signAccessToken(pair.privateKey, {
  issuer: ISSUER,
  audience: RESOURCE,
  subject: 'local:bench',
  clientId: 'bench-client-0123456789',
  scope: 'mcp:tools',
  kid: 'k1',
  grantId: 'grant-in-use-0123456789abcdef',
  lifetimeSeconds: 3600,
});
const user = { id: 'local:bench', email: 'bench@example.com', groups: [] } as never;
const verifier = createTokenVerifier({ issuer: ISSUER, publicKeys: () => [publicJwk] });
const guard = createResourceGuard({ verifier, findUser: async () => user, logger: createLogger('silent') });
const server: ProtectedServer = {
  name: 'bench',
  resource: RESOURCE,
  resourceMetadataUrl: `${ISSUER}/.well-known/oauth-protected-resource/mcp`,
  scopes: [],
  identity: identityHeaderPlan({ subject: 'x-user-id', email: 'x-user-email' }),
  idpTokenHeader: undefined,
  needsIdpToken: false,
  reservedHeaders: new Set(),
};
const header = Buffer.from(`Bearer ${token}`);
if (!(await guard.check(server, header.toString('latin1'), '')).ok) throw new Error('the bench token does not pass');
console.log(`token: ${token.length} characters`);

function nsPerCheck(): number {
  // node:http gives each request its own header string; so does this.
  const headers = Array.from({ length: CHECKS }, () => header.toString('latin1'));
  const start = process.cpuUsage();
  let accepted = 0;
  for (let i = 0; i < CHECKS; i++) {
    const result = guard.check(server, headers[i], '');
    if (!(result instanceof Promise) && result.ok) accepted++;
  }
  if (accepted !== CHECKS) throw new Error('a check failed');
  const used = process.cpuUsage(start);
  return ((used.user + used.system) * 1000) / CHECKS;
}

const samples: number[] = [];
for (let round = 0; round < ROUNDS; round++) samples.push(nsPerCheck());
samples.sort((a, b) => a - b);
console.log(
  `guard.check on a cached token, ${CHECKS} checks x ${ROUNDS} rounds: best ${samples[0]!.toFixed(0)} ns, median ${samples[ROUNDS >> 1]!.toFixed(0)} ns`,
);
