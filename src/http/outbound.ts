/**
 * Outbound HTTP for calls the gateway itself makes to identity providers (discovery, JWKS, token,
 * userinfo) and, later, CIMD documents. One undici connection pool per purpose, so keep-alive works, a
 * private CA can be trusted without touching the process-wide trust store, and every call has a
 * deadline: an IdP that hangs must not hold a login (or a worker) forever.
 */
import tls from 'node:tls';
import type { RequestInit as UndiciRequestInit } from 'undici';
import { Agent, fetch as undiciFetch } from 'undici';
import { ErrorCode, GatewayError } from '../core/errors.ts';

export interface OutboundFetchOptions {
  /** PEM certificates trusted in addition to the default roots (`extraCaCertificatesFile`'s content). */
  extraCaPem?: string;
  /** Deadline for the whole exchange: connect, headers and body. */
  timeoutMs: number;
  /** Told about every call once its response headers (or its failure) arrived: the metrics. */
  observe?: (url: string, seconds: number, outcome: OutboundOutcome) => void;
}

/** How an outbound call ended, for the metrics: its status class, or why no response came. */
export type OutboundOutcome = 'ok' | 'http_4xx' | 'http_5xx' | 'network' | 'timeout';

/** A `fetch` bound to its own connection pool; `close()` ends the pool's sockets. */
export type OutboundFetch = typeof fetch & { close(): Promise<void> };

/**
 * Creates a `fetch` whose TLS trusts the default roots plus `extraCaPem`, with a deadline on every call.
 * Pass it to openid-client as `[client.customFetch]`. Redirects are whatever the caller asks for
 * (openid-client always asks for `manual`).
 */
export function createOutboundFetch(options: OutboundFetchOptions): OutboundFetch {
  const { timeoutMs, observe } = options;
  if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) {
    throw new GatewayError(ErrorCode.HTTP_INVALID_ARGUMENT, 'timeoutMs must be a positive integer');
  }
  const agent = new Agent({
    connect: trustedCa(options.extraCaPem),
    connectTimeout: timeoutMs,
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
  });

  const outbound = async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    const deadline = AbortSignal.timeout(timeoutMs);
    const signal = init?.signal ? AbortSignal.any([init.signal, deadline]) : deadline;
    const { url, fromRequest } = splitInput(input);
    const merged = { ...fromRequest, ...init, signal, dispatcher: agent } as UndiciRequestInit;
    // undici's Response is a different class from the global one but the same shape; openid-client and
    // the MCP SDK only rely on the shape.
    if (observe === undefined) return (await undiciFetch(url, merged)) as unknown as Response;
    const started = performance.now();
    try {
      const response = await undiciFetch(url, merged);
      const status = response.status;
      observe(url, (performance.now() - started) / 1000, status >= 500 ? 'http_5xx' : status >= 400 ? 'http_4xx' : 'ok');
      return response as unknown as Response;
    } catch (error) {
      observe(url, (performance.now() - started) / 1000, deadline.aborted ? 'timeout' : 'network');
      throw error;
    }
  };
  return Object.assign(outbound, { close: () => agent.close() }) as OutboundFetch;
}

/**
 * TLS trust for an outbound undici connection: Node's default trust, plus the extra CA when given.
 * Setting `ca` replaces Node's default trust, so the default roots are listed again; leaving it unset
 * keeps Node's own behaviour (including NODE_EXTRA_CA_CERTS and --use-system-ca).
 */
export function trustedCa(extraCaPem: string | undefined): { ca?: string[] } {
  return extraCaPem ? { ca: [...defaultRoots(), extraCaPem] } : {};
}

/** Node's trusted roots; `getCACertificates('default')` (Node ≥ 22.15) also has NODE_EXTRA_CA_CERTS and the system store when enabled. */
function defaultRoots(): readonly string[] {
  const withDefaults = tls as { getCACertificates?: (type: 'default') => string[] };
  return withDefaults.getCACertificates?.('default') ?? tls.rootCertificates;
}

/** The global `Request` class is not undici-the-package's, so a Request input is unpacked into options. */
function splitInput(input: RequestInfo | URL): { url: string; fromRequest: RequestInit } {
  if (typeof input === 'string') return { url: input, fromRequest: {} };
  if (input instanceof URL) return { url: input.href, fromRequest: {} };
  const fromRequest: RequestInit & { duplex?: 'half' } = {
    method: input.method,
    headers: input.headers,
    redirect: input.redirect,
    signal: input.signal,
  };
  if (input.body) {
    fromRequest.body = input.body;
    fromRequest.duplex = 'half';
  }
  return { url: input.url, fromRequest };
}
