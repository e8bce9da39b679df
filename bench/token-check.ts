/**
 * Micro-benchmark of the hot-path token check (ARCHITECTURE.md, "Performance"): `peek` on a cached
 * token, without a revocation list and with one holding `--revoked` grants (docs/tokens.md,
 * "Revocation"), interleaved in one process so both see the same machine load. Prints the best and
 * median nanoseconds per check of each. The end-to-end `npm run bench` cannot resolve a difference of
 * a few nanoseconds; this can. Usage: `npm run bench:token-check [-- --revoked 10000 --rounds 9]`.
 */
import { exportJWK, generateKeyPair } from 'jose';
import { createTokenVerifier, type TokenVerifier } from '../src/resource-server/token-verifier.ts';
import { MemoryStorage } from '../src/storage/memory.ts';
import { RevocationList } from '../src/storage/revocation-list.ts';
import { signAccessToken } from '../test/support/access-tokens.ts';
import { benchArgs } from './harness.ts';

const args = benchArgs();
const REVOKED = Number(args.get('revoked') ?? 10_000);
const ROUNDS = Number(args.get('rounds') ?? 9);
const CHECKS = 2_000_000;
const ISSUER = 'https://gw.example.com';
const RESOURCE = 'https://gw.example.com/mcp';

const pair = await generateKeyPair('ES256');
const publicJwk = { ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
const token = await signAccessToken(pair.privateKey, {
  issuer: ISSUER,
  audience: RESOURCE,
  subject: 'local:bench',
  clientId: 'bench',
  scope: 'mcp:tools',
  kid: 'k1',
  grantId: 'grant-in-use',
  lifetimeSeconds: 3600,
});

const revocations = new RevocationList({ storage: new MemoryStorage(), retentionSeconds: 3600, pollIntervalMs: 1000 });
await Promise.all(Array.from({ length: REVOKED }, (_, i) => revocations.revoke(`revoked-${i}`)));

const plain = createTokenVerifier({ issuer: ISSUER, publicKeys: () => [publicJwk] });
const withList = createTokenVerifier({ issuer: ISSUER, publicKeys: () => [publicJwk], isRevoked: (grantId) => revocations.isRevoked(grantId) });
for (const verifier of [plain, withList]) if (!(await verifier.verify(token, RESOURCE)).ok) throw new Error('the bench token does not verify');

function nsPerCheck(verifier: TokenVerifier): number {
  const start = process.hrtime.bigint();
  let accepted = 0;
  for (let i = 0; i < CHECKS; i++) if (verifier.peek(token, RESOURCE)?.ok) accepted++;
  if (accepted !== CHECKS) throw new Error('a check failed');
  return Number(process.hrtime.bigint() - start) / CHECKS;
}

const samples = { plain: [] as number[], withList: [] as number[] };
for (let round = 0; round < ROUNDS; round++) {
  samples.plain.push(nsPerCheck(plain));
  samples.withList.push(nsPerCheck(withList));
}
const best = (values: number[]) => Math.min(...values).toFixed(1);
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!.toFixed(1);
console.log(`cached token check, ${CHECKS} checks x ${ROUNDS} rounds, ns per check (best / median):`);
console.log(`  no revocation list          ${best(samples.plain)} / ${median(samples.plain)}`);
console.log(`  ${String(REVOKED).padStart(6)} revoked grants       ${best(samples.withList)} / ${median(samples.withList)}`);
