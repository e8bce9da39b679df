/**
 * Client ID Metadata Documents (CIMD): the client_id is an https URL whose document describes the
 * client. oidc-provider implements the protocol (URL checks, client_id equality, no shared secrets,
 * cache by HTTP headers); this module supplies what it must not decide alone:
 *
 * - the fetch itself: our SSRF guard at connect time, no redirects followed (only 200 is accepted),
 *   a size cap and a timeout, and trust in the configured extra CA (corporate PKI);
 * - the host allow/deny policy, failures remembered briefly and rate limits on fetches (cimd-gate.ts);
 * - normalisation of the document (see client-metadata.ts) before oidc-provider validates it.
 */
import { Agent, fetch as undiciFetch } from 'undici';
import { readCappedResponse } from '../http/body.ts';
import { trustedCa } from '../http/outbound.ts';
import type { Logger } from '../observability/logger.ts';
import { normaliseClientMetadata } from './client-metadata.ts';
import { assertHostAllowed, guardedLookup } from './ssrf.ts';

export interface CimdOptions {
  allowHosts: string[];
  denyHosts: string[];
  allowPrivateAddresses: boolean;
  fetchTimeoutMs: number;
  maxBytes: number;
  extraCaPem?: string;
  knownScopes: ReadonlySet<string>;
  logger: Logger;
  /** Told of every document that could not be used, so it is not fetched again at once (cimd-gate.ts). */
  onRefused?: (clientId: string, reason: string) => Promise<void>;
}

/** `*.example.com` matches subdomains of example.com, anything else matches exactly (case-insensitive). */
export function hostMatches(host: string, pattern: string): boolean {
  const h = host.toLowerCase();
  const p = pattern.toLowerCase();
  if (p.startsWith('*.')) return h.endsWith(p.slice(1)) && h.length > p.length - 1;
  return h === p;
}

export function hostAllowed(host: string, options: Pick<CimdOptions, 'allowHosts' | 'denyHosts'>): boolean {
  if (options.denyHosts.some((pattern) => hostMatches(host, pattern))) return false;
  if (options.allowHosts.length === 0) return true;
  return options.allowHosts.some((pattern) => hostMatches(host, pattern));
}

/** The `fetch` oidc-provider uses for CIMD documents, and a `close` for its connection pool. */
export function createCimdFetch(options: CimdOptions) {
  const agent = new Agent({
    connect: {
      lookup: guardedLookup(options.allowPrivateAddresses) as never,
      ...trustedCa(options.extraCaPem),
      timeout: options.fetchTimeoutMs,
    },
    headersTimeout: options.fetchTimeoutMs,
    bodyTimeout: options.fetchTimeoutMs,
  });

  const refused = options.onRefused ?? (async () => undefined);

  async function cimdFetch(input: string | URL): Promise<Response> {
    const clientId = String(input);
    const url = new URL(clientId);
    try {
      assertHostAllowed(url, options.allowPrivateAddresses);
      const response = await undiciFetch(url, {
        method: 'GET',
        headers: { accept: 'application/json' },
        redirect: 'manual', // CIMD: redirects are not followed; only a direct 200 counts
        // One deadline for the whole fetch, as configured (oidc-provider's own signal is a fixed 2.5 s).
        signal: AbortSignal.timeout(options.fetchTimeoutMs),
        dispatcher: agent,
      });
      if (response.status !== 200) {
        await response.body?.cancel();
        options.logger.warn({ clientId: url.href, status: response.status }, 'client metadata document fetch refused: status is not 200');
        await refused(clientId, `status ${response.status}`);
        return new Response(null, { status: response.status });
      }
      const text = (await readCappedResponse(response.body as ReadableStream<Uint8Array> | null, options.maxBytes)).toString('utf8');
      const document: unknown = JSON.parse(text);
      // oidc-provider checks this too, after this fetch; checked here so the refusal is remembered.
      if ((document as { client_id?: unknown } | null)?.client_id !== clientId) throw new Error('the document names another client_id');
      const normalised = normaliseClientMetadata(document, { knownScopes: options.knownScopes, source: 'metadata-document' });
      const headers = new Headers({ 'content-type': 'application/json' });
      for (const name of ['cache-control', 'expires']) {
        const value = response.headers.get(name);
        if (value) headers.set(name, value);
      }
      return new Response(JSON.stringify(normalised), { status: 200, headers });
    } catch (error) {
      // oidc-provider turns a thrown fetch into invalid_client; the reason belongs in our logs only.
      options.logger.warn({ clientId: url.href, reason: (error as Error).message }, 'client metadata document fetch failed');
      await refused(clientId, (error as Error).message);
      throw error;
    }
  }

  return { fetch: cimdFetch, close: () => agent.close() };
}
