/**
 * Prometheus metrics (docs/operations.md) on the whole stack: a real login through the real IdP, MCP
 * calls from the official SDK client through the gateway to the demo server, then `/metrics` scraped
 * from the separate metrics listener and parsed. Values are asserted, not just names: a counter moves
 * by exactly the calls made, the histogram's count matches the counter, the audit events of the login
 * show up once each.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { TestOAuthClientProvider } from '../support/mcp-client.ts';
import { parseExposition, type Sample, sampleValue } from '../support/prometheus.ts';
import { loggedInClient, type Stack, startStack } from './stack.ts';

describe('metrics', () => {
  let stack: Stack;
  let client: Client;

  before(async () => {
    stack = await startStack({
      configure: (config) => {
        config.metrics = { enabled: true, listen: { host: '127.0.0.1', port: 0 } };
      },
    });
  });
  after(async () => {
    await client?.close();
    await stack?.close();
  });

  async function scrape(): Promise<Sample[]> {
    assert.ok(stack.gateway.opsUrl, 'the metrics listener runs');
    const response = await fetch(`${stack.gateway.opsUrl}/metrics`);
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    return parseExposition(await response.text());
  }

  it('is not served on the public listener by default', async () => {
    const response = await fetch(`${stack.issuer}/metrics`);
    assert.equal(response.status, 404);
  });

  it('counts a login, MCP calls by method and tool, and their latencies', async () => {
    const echo = { server: 'tools', method: 'tools/call', tool: 'echo', status: '200' };
    const before = await scrape();
    assert.equal(sampleValue(before, 'mcp_gateway_mcp_requests_total', echo), 0);
    assert.equal(sampleValue(before, 'mcp_gateway_logins_total', { provider: 'corp', result: 'succeeded' }), 0);

    client = await loggedInClient(stack, new TestOAuthClientProvider({ mode: 'dcr', clientName: 'Metrics test' }));
    for (const text of ['one', 'two', 'three']) {
      const result = await client.callTool({ name: 'echo', arguments: { text } });
      assert.deepEqual(result.content, [{ type: 'text', text }]);
    }
    await client.listTools();

    const after = await scrape();
    assert.equal(sampleValue(after, 'mcp_gateway_mcp_requests_total', echo), 3);
    assert.equal(sampleValue(after, 'mcp_gateway_mcp_request_duration_seconds_count', echo), 3);
    assert.equal(sampleValue(after, 'mcp_gateway_mcp_request_duration_seconds_bucket', { ...echo, le: '+Inf' }), 3);
    const sum = sampleValue(after, 'mcp_gateway_mcp_request_duration_seconds_sum', echo);
    assert.ok(sum > 0 && sum < 30, `three loopback echoes took ${sum} s in total`);
    // Buckets are cumulative: never decreasing, ending at the count.
    const buckets = after.filter((s) => s.name === 'mcp_gateway_mcp_request_duration_seconds_bucket' && s.labels.tool === 'echo').map((s) => s.value);
    assert.deepEqual(
      buckets,
      [...buckets].sort((a, b) => a - b),
    );
    assert.equal(sampleValue(after, 'mcp_gateway_mcp_requests_total', { server: 'tools', method: 'tools/list', tool: '', status: '200' }), 1);
    assert.equal(sampleValue(after, 'mcp_gateway_mcp_requests_total', { server: 'tools', method: 'initialize', tool: '', status: '200' }), 1);
    // The SDK's first attempt, before it had a token: refused with the Bearer challenge.
    assert.equal(sampleValue(after, 'mcp_gateway_mcp_requests_total', { server: 'tools', method: 'POST', tool: '', status: '401' }), 1);

    // The login's audit events, once each.
    assert.equal(sampleValue(after, 'mcp_gateway_client_registrations_total', { result: 'registered' }), 1);
    assert.equal(sampleValue(after, 'mcp_gateway_consents_total', { result: 'approved' }), 1);
    assert.equal(sampleValue(after, 'mcp_gateway_logins_total', { provider: 'corp', result: 'succeeded' }), 1);
    assert.equal(sampleValue(after, 'mcp_gateway_tokens_issued_total', { grant_type: 'authorization_code' }), 1);

    // One signature check for the token, the other MCP requests answered from the cache.
    assert.equal(sampleValue(after, 'mcp_gateway_token_cache_lookups_total', { result: 'miss' }), 1);
    assert.ok(sampleValue(after, 'mcp_gateway_token_cache_lookups_total', { result: 'hit' }) >= 4);
    assert.equal(sampleValue(after, 'mcp_gateway_token_cache_entries'), 1);
    // The IdP was called (discovery, token, JWKS) and answered.
    const idpCalls = after.filter((s) => s.name === 'mcp_gateway_idp_request_duration_seconds_count' && s.labels.outcome === 'ok');
    assert.ok(idpCalls.reduce((total, s) => total + s.value, 0) >= 3, 'discovery, JWKS and the token exchange were timed');
    // The upstream pool holds the keep-alive connection the calls used.
    assert.ok(after.some((s) => s.name === 'mcp_gateway_upstream_connections' && s.labels.state === 'connected' && s.value >= 1));
    // Node process metrics come along.
    assert.ok(sampleValue(after, 'process_resident_memory_bytes') > 0);
  });

  it('caps tool names: a flood of invented names ends in `other`', async () => {
    for (let i = 0; i < 60; i++) await client.callTool({ name: `made_up_${i}`, arguments: {} }).catch(() => undefined);
    const samples = await scrape();
    const tools = new Set(samples.filter((s) => s.name === 'mcp_gateway_mcp_requests_total' && s.labels.method === 'tools/call').map((s) => s.labels.tool));
    assert.ok(tools.size <= 51, `${tools.size} tool labels`);
    assert.ok(tools.has('other'));
    assert.ok(tools.has('echo'), 'the names seen first keep their label');
  });
});
