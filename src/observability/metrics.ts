/**
 * The gateway's Prometheus metrics (prom-client), in one registry. docs/operations.md lists every
 * metric with its labels and example alerts.
 *
 * Three kinds of sources, chosen by how often they change:
 * - the MCP hot path keeps plain-number series (mcp-requests.ts) read at scrape time, so a request
 *   never pays for a prom-client label lookup;
 * - authorization events are counted from the audit events the gateway already logs (`event:` fields,
 *   see `countEvent`): one table here instead of a call at every decision;
 * - sizes that already live elsewhere (token cache, upstream pools, stdio processes) are read by
 *   gauges' `collect` at scrape time.
 * Every label value is bounded: server, provider and upstream names come from the configuration;
 * grant types, OAuth errors and MCP methods from fixed lists; tool names are capped per server.
 */
import type { Metric } from 'prom-client';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import { MCP_DURATION_BUCKETS, type McpRequestRecorder } from './mcp-requests.ts';

export const METRICS_CONTENT_TYPE = Registry.PROMETHEUS_CONTENT_TYPE;

/** Read at scrape time: the resource server's verified-token cache. */
export interface TokenCacheStats {
  entries: number;
  hits: number;
  misses: number;
}

/** Read at scrape time: one keep-alive pool per upstream origin (undici's pool stats). */
export interface UpstreamPoolStats {
  upstream: string;
  connected: number;
  free: number;
  pending: number;
  running: number;
}

/** What the composition root hands in once the rooms exist; each is read at scrape time only. */
export interface MetricSources {
  tokenCache?: () => TokenCacheStats;
  upstreamPools?: () => readonly UpstreamPoolStats[];
  /** Running stdio processes per server. */
  stdioProcesses?: () => ReadonlyArray<{ server: string; processes: number }>;
}

/** src/authorization/grant-revocation.ts */
const REVOCATION_REASONS = new Set(['access_token_revoked', 'refresh_denied', 'user_revoked', 'client_revoked', 'admin']);
const GRANT_TYPES = new Set(['authorization_code', 'refresh_token', 'client_credentials', 'urn:ietf:params:oauth:grant-type:device_code']);
/** RFC 6749 §5.2, RFC 8707 §2, RFC 9449 and oidc-provider's own codes; anything else is `other`. */
const OAUTH_ERRORS = new Set([
  'invalid_request',
  'invalid_client',
  'invalid_grant',
  'unauthorized_client',
  'unsupported_grant_type',
  'invalid_scope',
  'invalid_target',
  'access_denied',
  'server_error',
  'temporarily_unavailable',
  'invalid_dpop_proof',
  'invalid_client_metadata',
  'invalid_redirect_uri',
]);

/** Distinct IdP hosts labelled before further ones count as `other`. */
const MAX_IDP_HOSTS = 20;

function bounded(value: unknown, allowed: ReadonlySet<string>): string {
  return typeof value === 'string' && allowed.has(value) ? value : 'other';
}

export interface GatewayMetricsOptions {
  mcp: McpRequestRecorder;
  /** Identity provider ids, upstream server names: the only values their labels may take. */
  providers: readonly string[];
  servers: readonly string[];
  /** Node process metrics (CPU, memory, event-loop lag, GC); off in unit tests that make many registries. */
  processMetrics?: boolean;
}

export class GatewayMetrics {
  readonly registry = new Registry();
  readonly #providers: ReadonlySet<string>;
  readonly #servers: ReadonlySet<string>;
  readonly #idpHosts = new Set<string>();
  #sources: MetricSources = {};

  readonly #registrations: Counter<'result'>;
  readonly #consents: Counter<'result'>;
  readonly #logins: Counter<'provider' | 'result'>;
  readonly #tokensIssued: Counter<'grant_type'>;
  readonly #tokensRefused: Counter<'grant_type' | 'error'>;
  readonly #refreshReplays: Counter<string>;
  readonly #grantsRevoked: Counter<'reason'>;
  readonly #revocationsRefused: Counter<string>;
  readonly #upstreamErrors: Counter<'upstream' | 'kind'>;
  readonly #idpDuration: Histogram<'provider' | 'outcome'>;
  readonly #idpFailures: Counter<'provider' | 'reason'>;

  constructor(options: GatewayMetricsOptions) {
    this.#providers = new Set(options.providers);
    this.#servers = new Set(options.servers);
    const registers = [this.registry];
    const counter = <L extends string>(name: string, help: string, labelNames: readonly L[] = []) => new Counter<L>({ name, help, labelNames, registers });

    this.#defineMcpRequests(options.mcp);
    this.#registrations = counter('mcp_gateway_client_registrations_total', 'Dynamic client registrations, by result (registered, refused, rate_limited).', [
      'result',
    ]);
    this.#consents = counter('mcp_gateway_consents_total', 'Consent decisions on the consent page, by result (approved, denied).', ['result']);
    this.#logins = counter('mcp_gateway_logins_total', 'Logins completed at an identity provider, by provider and result (succeeded, failed, denied).', [
      'provider',
      'result',
    ]);
    this.#tokensIssued = counter('mcp_gateway_tokens_issued_total', 'Token responses issued by the token endpoint, by grant type.', ['grant_type']);
    this.#tokensRefused = counter('mcp_gateway_tokens_refused_total', 'Token requests refused, by grant type and OAuth error code.', ['grant_type', 'error']);
    this.#refreshReplays = counter(
      'mcp_gateway_refresh_token_replays_total',
      'Refresh tokens presented again within the reuse grace period (the first response replayed, docs/tokens.md).',
    );
    this.#grantsRevoked = counter(
      'mcp_gateway_grants_revoked_total',
      'Grants revoked, by reason (authorization_server: refresh-token or code reuse, refresh token revoked at /revoke; access_token_revoked, refresh_denied, user_revoked, client_revoked, admin).',
      ['reason'],
    );
    // Successful revocations show as mcp_gateway_grants_revoked_total (oidc-provider emits no success event).
    this.#revocationsRefused = counter('mcp_gateway_revocations_refused_total', 'Requests to the revocation endpoint (RFC 7009) refused.');
    this.#upstreamErrors = counter(
      'mcp_gateway_upstream_errors_total',
      'Upstream MCP server failures, by server and kind (unavailable, timeout, body_stalled, invalid_response, stream_broken, stream_unanswered, bad_sse_endpoint).',
      ['upstream', 'kind'],
    );
    this.#idpDuration = new Histogram({
      name: 'mcp_gateway_idp_request_duration_seconds',
      help: 'Calls the gateway makes to identity providers (discovery, JWKS, token, userinfo), by provider host and outcome.',
      labelNames: ['provider', 'outcome'],
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.#idpFailures = counter(
      'mcp_gateway_idp_request_failures_total',
      'Calls to identity providers that failed, by provider host and reason (network, timeout, http_5xx).',
      ['provider', 'reason'],
    );
    this.#defineGauges();
    if (options.processMetrics !== false) collectDefaultMetrics({ register: this.registry });
  }

  /** Called by the composition root once the rooms exist. */
  setSources(sources: MetricSources): void {
    this.#sources = sources;
  }

  /** The Prometheus text exposition of every metric. */
  render(): Promise<string> {
    return this.registry.metrics();
  }

  /**
   * Counts an audit event the gateway logged (the object logged with an `event` field). The one
   * place that turns decisions into counters; unknown events are ignored.
   */
  countEvent(fields: Readonly<Record<string, unknown>>): void {
    const counted = this.#counterFor(fields);
    if (counted !== undefined) counted[0].inc(counted[1]);
  }

  #counterFor(fields: Readonly<Record<string, unknown>>): [Counter<string>, Record<string, string>] | undefined {
    switch (fields.event) {
      case 'client.registered':
        return [this.#registrations, { result: 'registered' }];
      case 'client.registration_refused':
        return [this.#registrations, { result: 'refused' }];
      case 'client.registration_rate_limited':
        return [this.#registrations, { result: 'rate_limited' }];
      case 'consent.approved':
        return [this.#consents, { result: 'approved' }];
      case 'consent.denied':
        return [this.#consents, { result: 'denied' }];
      case 'login.succeeded':
        // The user id is `<provider id>:<subject>` (src/core/identity.ts).
        return [this.#logins, { provider: bounded(String(fields.user ?? '').split(':')[0], this.#providers), result: 'succeeded' }];
      case 'login.failed':
        return [this.#logins, { provider: bounded(fields.provider, this.#providers), result: 'failed' }];
      case 'login.denied':
        return [this.#logins, { provider: bounded(fields.provider, this.#providers), result: 'denied' }];
      case 'token.issued':
        return [this.#tokensIssued, { grant_type: bounded(fields.grantType, GRANT_TYPES) }];
      case 'token.refused':
        return [this.#tokensRefused, { grant_type: bounded(fields.grantType, GRANT_TYPES), error: bounded(fields.error, OAUTH_ERRORS) }];
      case 'token.replayed':
        return [this.#refreshReplays, {}];
      case 'grant.revoked':
        // Without a reason: oidc-provider revoked it (refresh-token or code reuse, a refresh token revoked at /revoke).
        return [this.#grantsRevoked, { reason: fields.reason === undefined ? 'authorization_server' : bounded(fields.reason, REVOCATION_REASONS) }];
      case 'revocation.refused':
        return [this.#revocationsRefused, {}];
      case 'upstream.unavailable':
      case 'upstream.timeout':
      case 'upstream.stream_broken':
      case 'upstream.bad_sse_endpoint':
      case 'upstream.body_stalled':
      case 'upstream.invalid_response':
      case 'upstream.stream_unanswered':
        return [this.#upstreamErrors, { upstream: bounded(fields.upstream, this.#servers), kind: (fields.event as string).slice('upstream.'.length) }];
    }
  }

  /**
   * One call the gateway made to an identity provider; labelled by the URL's host. Hosts come from
   * the configuration and the IdPs' discovery documents; past MAX_IDP_HOSTS they count as `other`.
   */
  observeIdpCall(url: string, seconds: number, outcome: 'ok' | 'http_4xx' | 'http_5xx' | 'network' | 'timeout'): void {
    const host = URL.parse(url)?.host ?? 'other';
    if (!this.#idpHosts.has(host) && this.#idpHosts.size < MAX_IDP_HOSTS) this.#idpHosts.add(host);
    const provider = this.#idpHosts.has(host) ? host : 'other';
    this.#idpDuration.observe({ provider, outcome }, seconds);
    if (outcome === 'network' || outcome === 'timeout' || outcome === 'http_5xx') this.#idpFailures.inc({ provider, reason: outcome });
  }

  #defineMcpRequests(mcp: McpRequestRecorder): void {
    const labelNames = ['server', 'method', 'tool', 'status'] as const;
    new Counter({
      name: 'mcp_gateway_mcp_requests_total',
      help: 'MCP requests answered, by server, JSON-RPC method (HTTP method for GET streams, DELETE and unread bodies), tool and HTTP status (`aborted`: cut before the end).',
      labelNames,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const s of mcp.series()) this.inc({ server: s.server, method: s.method, tool: s.tool, status: s.status }, s.count);
      },
    });
    this.registry.registerMetric(
      new SeriesHistogram(
        'mcp_gateway_mcp_request_duration_seconds',
        'Time from the request reaching the gateway to the end of its response (for SSE streams: the stream lifetime), same labels as mcp_gateway_mcp_requests_total.',
        mcp,
      ) as unknown as Metric,
    );
    new Gauge({
      name: 'mcp_gateway_sse_streams_open',
      help: 'SSE responses open to MCP clients right now, by server.',
      labelNames: ['server'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [server, open] of mcp.openStreams()) this.set({ server }, open);
      },
    });
  }

  #defineGauges(): void {
    const metrics = this;
    const registers = [this.registry];
    new Gauge({
      name: 'mcp_gateway_token_cache_entries',
      help: 'Verified access tokens held in the resource server cache.',
      registers,
      collect() {
        const stats = metrics.#sources.tokenCache?.();
        if (stats) this.set(stats.entries);
      },
    });
    new Counter({
      name: 'mcp_gateway_token_cache_lookups_total',
      help: 'Access-token checks on MCP requests, by result: hit (answered from the cache) or miss (signature verified).',
      labelNames: ['result'],
      registers,
      collect() {
        const stats = metrics.#sources.tokenCache?.();
        if (!stats) return;
        this.reset();
        this.inc({ result: 'hit' }, stats.hits);
        this.inc({ result: 'miss' }, stats.misses);
      },
    });
    new Gauge({
      name: 'mcp_gateway_upstream_connections',
      help: 'Keep-alive pool connections to upstream MCP servers, by upstream origin and state (connected, free, running requests, pending requests).',
      labelNames: ['upstream', 'state'],
      registers,
      collect() {
        this.reset();
        for (const pool of metrics.#sources.upstreamPools?.() ?? []) {
          this.set({ upstream: pool.upstream, state: 'connected' }, pool.connected);
          this.set({ upstream: pool.upstream, state: 'free' }, pool.free);
          this.set({ upstream: pool.upstream, state: 'running' }, pool.running);
          this.set({ upstream: pool.upstream, state: 'pending' }, pool.pending);
        }
      },
    });
    new Gauge({
      name: 'mcp_gateway_stdio_processes',
      help: 'Running stdio MCP server processes, by server.',
      labelNames: ['server'],
      registers,
      collect() {
        this.reset();
        for (const { server, processes } of metrics.#sources.stdioProcesses?.() ?? []) this.set({ server }, processes);
      },
    });
  }
}

/**
 * A histogram whose samples come from the hot path's own series (mcp-requests.ts) rather than from
 * prom-client's `observe`: the registry only asks metrics for `get()`, which this answers in the shape
 * prom-client's own Histogram does.
 */
class SeriesHistogram {
  readonly name: string;
  readonly help: string;
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  readonly #mcp: McpRequestRecorder;

  constructor(name: string, help: string, mcp: McpRequestRecorder) {
    this.name = name;
    this.help = help;
    this.#mcp = mcp;
  }

  async get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: unknown[] }> {
    const values: unknown[] = [];
    for (const s of this.#mcp.series()) {
      const labels = { server: s.server, method: s.method, tool: s.tool, status: s.status };
      let cumulative = 0;
      MCP_DURATION_BUCKETS.forEach((le, index) => {
        cumulative += s.buckets[index] as number;
        values.push({ labels: { ...labels, le }, value: cumulative, metricName: `${this.name}_bucket` });
      });
      values.push({ labels: { ...labels, le: '+Inf' }, value: s.count, metricName: `${this.name}_bucket` });
      values.push({ labels, value: s.sum, metricName: `${this.name}_sum` });
      values.push({ labels, value: s.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  reset(): void {}
}
