/**
 * Micro-benchmark: the CPU cost of one MCP call's audit line (docs/audit.md) as the resource server
 * writes it: a pino child with `event` and `server` bound, the per-call fields serialised, into a
 * sink that drops the bytes (the write to a file or stderr is asynchronous and off this path).
 * Usage: `npx node bench/audit-line.ts [--lines 200000] [--redacted]`.
 */
import { performance } from 'node:perf_hooks';
import { callAuditLogger, createAuditLogger } from '../src/observability/audit.ts';
import { benchArgs } from './harness.ts';

const LINES = Number(benchArgs().get('lines') ?? 200_000);
let bytes = 0;
const stream = createAuditLogger('off', {
  write: (chunk: string) => {
    bytes += chunk.length;
  },
});
// `--redacted`: the same line through pino's path redaction, which the call lines skip (audit.ts).
const audit = benchArgs().has('redacted') ? stream.child({ event: 'mcp.call', server: 'tools' }) : callAuditLogger(stream, 'tools');

function line(i: number): void {
  audit.info({
    user: 'corp:alice',
    client: 'c0ffee-client-id',
    httpMethod: 'POST',
    decision: 'allowed',
    reason: undefined,
    limit: undefined,
    status: 200,
    upstreamStatus: 200,
    completed: true,
    latencyMs: 3.4,
    bytesIn: 112,
    bytesOut: 389,
    rpcMethod: 'tools/call',
    tool: 'echo',
    rpcId: i,
  });
}

for (let i = 0; i < 20_000; i++) line(i); // warm-up
const start = performance.now();
for (let i = 0; i < LINES; i++) line(i);
const elapsed = performance.now() - start;
console.log(`${LINES} audit lines: ${((elapsed * 1000) / LINES).toFixed(2)} µs per line, ${Math.round(bytes / (LINES + 20_000))} bytes per line`);
