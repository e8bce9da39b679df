/**
 * Benchmark: the cost of tool-level authorization (`servers[].toolAccess`, docs/policy.md) on the hot
 * path, in one run: the same gateway process serves the same trivial upstream through a route without
 * rules and through a route with a 20-rule policy, and the gateway's own CPU per request is read from
 * /proc for each (runs interleaved, so drift hits both alike).
 *
 * - `tools/call`: the request body is parsed once (as for any small JSON body) and judged; the answer
 *   streams through untouched.
 * - `tools/list`: the answer (50 tools) is also parsed, filtered (half the tools are refused) and
 *   written again: the price of list filtering, paid only by list requests to servers with rules.
 *
 * Layout as bench/run.ts (load generator on core 0, gateway and upstream on core 1 with `taskset`).
 * Usage: `node bench/tool-policy.ts [--duration 5 --connections 32 --rounds 2]`.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import autocannon from 'autocannon';
import { toolAccessSchema } from '../src/config/schema/tool-access.ts';
import type { GuardGrant } from '../src/resource-server/guard.ts';
import { ServerToolAccess } from '../src/resource-server/tool-policy.ts';
import { freePort, waitForUrl } from '../test/support/ports.ts';
import { benchArgs, cpuMicros, pinSelf, spawnNode, startBenchGateway, stopChildren, TASKSET } from './harness.ts';

const args = benchArgs();
const DURATION = Number(args.get('duration') ?? 5);
const CONNECTIONS = Number(args.get('connections') ?? 32);
const ROUNDS = Number(args.get('rounds') ?? 2);

/** Twenty rules, the allowing one last: 19 globs with group rules the bench user does not pass, then the catch-all for reads. */
function twentyRules(): unknown {
  const rules: unknown[] = Array.from({ length: 19 }, (_, i) => ({ tools: [`write_${i}*`, `admin_${i}_*`], access: { groups: [`group-${i}`] } }));
  rules.push({ tools: ['echo', 'read_*'] });
  return { rules };
}

interface Measured {
  requests: number;
  cpuMicros: number;
  rps: number;
  non2xx: number;
}

async function load(url: string, headers: Record<string, string>, body: string, pid: number): Promise<Measured> {
  const before = await cpuMicros(pid);
  const result = await autocannon({ url, method: 'POST', headers, body, connections: CONNECTIONS, duration: DURATION, pipelining: 1 });
  const after = await cpuMicros(pid);
  return { requests: result.requests.total, cpuMicros: after - before, rps: result.requests.average, non2xx: result.non2xx + result.errors + result.timeouts };
}

function summary(label: string, runs: Measured[]): { label: string; cpuPerRequest: number; rps: number; failed: number } {
  const requests = runs.reduce((sum, run) => sum + run.requests, 0);
  const cpu = runs.reduce((sum, run) => sum + run.cpuMicros, 0);
  return {
    label,
    cpuPerRequest: cpu / requests,
    rps: runs.reduce((sum, run) => sum + run.rps, 0) / runs.length,
    failed: runs.reduce((sum, run) => sum + run.non2xx, 0),
  };
}

/**
 * The screen alone, in this process: what a request to a server with rules adds to the gateway's
 * work (screen, one decision), without the HTTP stack's noise. The body is parsed once by the proxy
 * for every small JSON request anyway, so the parse is not counted.
 */
function screenCost(): number {
  const rules = toolAccessSchema.parse(twentyRules());
  if (!rules) throw new Error('no rules');
  const access = new ServerToolAccess(rules, { resourceMetadataUrl: 'http://localhost/.well-known/oauth-protected-resource/ruled', scopes: [] });
  const token = { claims: { sub: 'local:bench', client_id: 'c', exp: 0 }, expiresAt: 0, scopes: new Set(['openid']), kid: undefined };
  const user = { id: 'local:bench', provider: 'local', subject: 'bench', groups: ['staff'], createdAt: 0, lastLoginAt: 0 };
  const grant = { ok: true, token, user, identity: {}, idpToken: undefined } as unknown as GuardGrant;
  const messages = [JSON.parse('{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"text":"bench"}}}') as JSONRPCMessage];
  const headers = {};
  const rounds = 1_000_000;
  for (let i = 0; i < 10_000; i++) access.screenFor(grant).admit(messages, false, headers);
  const start = process.cpuUsage();
  for (let i = 0; i < rounds; i++) {
    if (access.screenFor(grant).admit(messages, false, headers) !== undefined) throw new Error('refused');
  }
  const used = process.cpuUsage(start);
  return (used.user + used.system) / rounds;
}

async function main(): Promise<void> {
  console.log(`in-process screen of a tools/call against 20 rules: ${screenCost().toFixed(3)} µs of CPU per request\n`);
  const dir = await mkdtemp(join(tmpdir(), 'mcpgw-bench-policy-'));
  const children: ChildProcess[] = [];
  try {
    pinSelf(0);
    const callPort = await freePort();
    const listPort = await freePort();
    children.push(spawnNode(1, 'bench/trivial-upstream.ts', ['--port', String(callPort)]));
    children.push(spawnNode(1, 'bench/trivial-upstream.ts', ['--port', String(listPort), '--tools', '50']));
    const callUrl = `http://127.0.0.1:${callPort}/mcp`;
    const listUrl = `http://127.0.0.1:${listPort}/mcp`;
    await waitForUrl(callUrl, { timeoutMs: 15_000, ok: () => true });
    await waitForUrl(listUrl, { timeoutMs: 15_000, ok: () => true });
    const gateway = await startBenchGateway({
      dir,
      core: 1,
      servers: [
        { name: 'plain', path: '/plain', upstream: { url: callUrl } },
        { name: 'ruled', path: '/ruled', upstream: { url: callUrl }, toolAccess: twentyRules() },
        { name: 'plain-list', path: '/plain-list', upstream: { url: listUrl } },
        { name: 'ruled-list', path: '/ruled-list', upstream: { url: listUrl }, toolAccess: twentyRules() },
      ],
    });
    children.push(gateway.child);
    const pid = gateway.child.pid as number;
    const base = { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2025-06-18' };
    const call = JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'echo', arguments: { text: 'bench' } } });
    const list = JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list', params: {} });
    const routes = ['/plain', '/ruled', '/plain-list', '/ruled-list'];
    const tokens = new Map<string, string>();
    for (const path of routes) tokens.set(path, await gateway.accessToken(path));
    const headersFor = (path: string) => ({ ...base, authorization: `Bearer ${tokens.get(path)}` });

    // Warm-up: JIT, token cache, policy memo.
    for (const path of routes)
      await autocannon({
        url: `${gateway.issuer}${path}`,
        method: 'POST',
        headers: headersFor(path),
        body: path.endsWith('list') ? list : call,
        connections: 4,
        duration: 1,
      });

    const runs = new Map<string, Measured[]>(routes.map((path) => [path, []]));
    console.log(
      `autocannon: ${CONNECTIONS} connections, ${DURATION} s per run, ${ROUNDS} interleaved rounds${TASKSET ? ', load on core 0, gateway and upstreams on core 1' : ''}\n`,
    );
    for (let round = 0; round < ROUNDS; round++) {
      for (const path of routes) runs.get(path)?.push(await load(`${gateway.issuer}${path}`, headersFor(path), path.endsWith('list') ? list : call, pid));
    }
    const [plain, ruled, plainList, ruledList] = routes.map((path) => summary(path, runs.get(path) ?? []));
    for (const row of [plain, ruled, plainList, ruledList]) {
      if (!row) continue;
      console.log(
        `${row.label.padEnd(12)} ${row.rps.toFixed(0).padStart(7)} req/s  gateway CPU ${row.cpuPerRequest.toFixed(1).padStart(6)} µs/req  failed ${row.failed}`,
      );
    }
    if (plain && ruled && plainList && ruledList) {
      console.log(`\n20-rule policy on tools/call: ${(ruled.cpuPerRequest - plain.cpuPerRequest).toFixed(1)} µs of gateway CPU per request`);
      console.log(`20-rule policy on tools/list (50 tools, 25 filtered out): ${(ruledList.cpuPerRequest - plainList.cpuPerRequest).toFixed(1)} µs per request`);
    }
  } finally {
    await stopChildren(children);
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
