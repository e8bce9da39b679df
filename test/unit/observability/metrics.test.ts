/**
 * The metrics' own rules (docs/operations.md): audit events counted whatever the log level, label
 * values bounded, the hot-path series exposed as a well-formed histogram, and `/metrics` on the main
 * listener only when the operator asks.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { IncomingMessage, ServerResponse } from 'node:http';
import { type AddressInfo, createServer, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { startGateway } from '../../../src/app.ts';
import { configSchema } from '../../../src/config/schema.ts';
import { countingEvents } from '../../../src/observability/counted-events.ts';
import { createLogger } from '../../../src/observability/logger.ts';
import { McpRequestRecorder, noteMcpMessage } from '../../../src/observability/mcp-requests.ts';
import { GatewayMetrics } from '../../../src/observability/metrics.ts';
import { freePort } from '../../support/ports.ts';
import { parseExposition, sampleValue } from '../../support/prometheus.ts';

function metricsFor(mcp = new McpRequestRecorder()): GatewayMetrics {
  return new GatewayMetrics({ mcp, providers: ['corp'], servers: ['tools'], processMetrics: false });
}

async function samples(metrics: GatewayMetrics) {
  return parseExposition(await metrics.render());
}

describe('metrics', () => {
  it('counts audit events even when the log level hides them', async () => {
    const metrics = metricsFor();
    const logger = countingEvents(createLogger('silent', { write: () => assert.fail('nothing is written at level silent') }), (fields) =>
      metrics.countEvent(fields),
    );
    logger.info({ event: 'login.succeeded', user: 'corp:alice' }, 'user signed in');
    logger.info({ event: 'login.succeeded', user: 'corp:bob' }, 'user signed in');
    logger.warn({ event: 'login.failed', provider: 'corp', reason: 'server_error' }, 'login failed');
    logger.info({ event: 'token.issued', grantType: 'refresh_token' }, 'tokens issued');
    logger.info({ event: 'not.a.counted.event' }, 'ignored');
    logger.info('no fields at all');
    const out = await samples(metrics);
    assert.equal(sampleValue(out, 'mcp_gateway_logins_total', { provider: 'corp', result: 'succeeded' }), 2);
    assert.equal(sampleValue(out, 'mcp_gateway_logins_total', { provider: 'corp', result: 'failed' }), 1);
    assert.equal(sampleValue(out, 'mcp_gateway_tokens_issued_total', { grant_type: 'refresh_token' }), 1);
  });

  it('keeps label values to known sets: anything a client can invent is `other`', async () => {
    const metrics = metricsFor();
    metrics.countEvent({ event: 'token.refused', grantType: 'urn:made-up:grant', error: '<script>' });
    metrics.countEvent({ event: 'login.failed', provider: 'not-configured' });
    metrics.countEvent({ event: 'upstream.timeout', upstream: 'tools' });
    metrics.countEvent({ event: 'grant.revoked', grantId: 'g1' });
    metrics.countEvent({ event: 'grant.revoked', grantId: 'g2', reason: 'user_revoked' });
    const out = await samples(metrics);
    assert.equal(sampleValue(out, 'mcp_gateway_tokens_refused_total', { grant_type: 'other', error: 'other' }), 1);
    assert.equal(sampleValue(out, 'mcp_gateway_logins_total', { provider: 'other', result: 'failed' }), 1);
    assert.equal(sampleValue(out, 'mcp_gateway_upstream_errors_total', { upstream: 'tools', kind: 'timeout' }), 1);
    assert.equal(sampleValue(out, 'mcp_gateway_grants_revoked_total', { reason: 'authorization_server' }), 1);
    assert.equal(sampleValue(out, 'mcp_gateway_grants_revoked_total', { reason: 'user_revoked' }), 1);
  });

  it('exposes the hot-path series as cumulative buckets whose +Inf is the count', async () => {
    let now = 0;
    const mcp = new McpRequestRecorder(() => now);
    const server = mcp.forServer('tools');
    const req = new IncomingMessage(new Socket());
    req.method = 'POST';
    for (const ms of [2, 40, 40, 7_000]) {
      const res = new ServerResponse(req);
      server.begin(req, res);
      noteMcpMessage(req, { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo' } });
      now += ms;
      res.emit('close');
    }
    const out = await samples(metricsFor(mcp));
    // Responses never written are counted as cut short.
    const labels = { server: 'tools', method: 'tools/call', tool: 'echo', status: 'aborted' };
    assert.equal(sampleValue(out, 'mcp_gateway_mcp_requests_total', labels), 4);
    assert.equal(sampleValue(out, 'mcp_gateway_mcp_request_duration_seconds_count', labels), 4);
    assert.equal(sampleValue(out, 'mcp_gateway_mcp_request_duration_seconds_bucket', { ...labels, le: '0.0025' }), 1);
    assert.equal(sampleValue(out, 'mcp_gateway_mcp_request_duration_seconds_bucket', { ...labels, le: '0.05' }), 3);
    assert.equal(sampleValue(out, 'mcp_gateway_mcp_request_duration_seconds_bucket', { ...labels, le: '5' }), 3);
    assert.equal(sampleValue(out, 'mcp_gateway_mcp_request_duration_seconds_bucket', { ...labels, le: '10' }), 4);
    assert.equal(sampleValue(out, 'mcp_gateway_mcp_request_duration_seconds_bucket', { ...labels, le: '+Inf' }), 4);
    assert.ok(Math.abs(sampleValue(out, 'mcp_gateway_mcp_request_duration_seconds_sum', labels) - 7.082) < 1e-9);
  });

  it('serves /metrics on the main listener only with metrics.onMainListener', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mcpgw-metrics-'));
    const start = (onMainListener: boolean) =>
      startGateway(
        configSchema.parse({
          listen: { host: '127.0.0.1', port: 0 },
          dataDir: dir,
          storage: { type: 'memory' },
          log: { level: 'silent' },
          metrics: { enabled: true, onMainListener, listen: { host: '127.0.0.1', port: 0 } },
        }),
        { announce: () => {}, logger: createLogger('silent') },
      );
    try {
      const main = await start(true);
      try {
        assert.equal(main.opsUrl, undefined, 'no second listener');
        const response = await fetch(`${main.listenUrl}/metrics`);
        assert.equal(response.status, 200);
        assert.ok(parseExposition(await response.text()).some((sample) => sample.name === 'process_cpu_user_seconds_total'));
      } finally {
        await main.close();
      }
      const separate = await start(false);
      try {
        assert.equal((await fetch(`${separate.listenUrl}/metrics`)).status, 404);
        assert.equal((await fetch(`${separate.opsUrl}/metrics`)).status, 200);
        assert.equal((await fetch(`${separate.opsUrl}/healthz`)).status, 200);
        assert.equal((await fetch(`${separate.opsUrl}/other`)).status, 404);
        assert.equal((await fetch(`${separate.opsUrl}/metrics`, { method: 'POST' })).status, 405);
      } finally {
        await separate.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('fails start-up when the metrics port is taken, and leaves nothing listening', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mcpgw-metrics-'));
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', () => resolve()));
    const taken = (blocker.address() as AddressInfo).port;
    const port = await freePort();
    try {
      await assert.rejects(
        startGateway(
          configSchema.parse({
            listen: { host: '127.0.0.1', port },
            dataDir: dir,
            storage: { type: 'memory' },
            metrics: { enabled: true, listen: { host: '127.0.0.1', port: taken } },
          }),
          { announce: () => {}, logger: createLogger('silent') },
        ),
        { code: 'EADDRINUSE' },
      );
      await assert.rejects(fetch(`http://127.0.0.1:${port}/healthz`), 'the main listener was closed again');
    } finally {
      blocker.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
