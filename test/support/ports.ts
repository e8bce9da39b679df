/**
 * Small helpers for servers started by tests: a free loopback port, waiting until a URL answers, and
 * closing an http(s) server without waiting for idle keep-alive sockets.
 */

import type { Server } from 'node:http';
import { createServer } from 'node:net';

/**
 * A port that was free a moment ago on 127.0.0.1. Prefer `listen(0)` where the server is ours; this
 * is for URLs that must be known before anything listens (a redirect URI nobody serves, a child process).
 *
 * The port is drawn at random below Linux's ephemeral range (32768-60999 by default): ports the kernel
 * hands out for `listen(0)` and outgoing connections come from that range, so a port chosen here is not
 * taken by another test's server or socket between this probe and the real `listen` (seen as
 * EADDRINUSE under `--test-concurrency`). Only another freePort caller could still pick it, and the
 * probe makes that unlikely. Falls back to a kernel-chosen port after a few collisions.
 */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const candidate = 20_000 + Math.floor(Math.random() * 12_000);
    if (await canListen(candidate, host)) return candidate;
  }
  return probePort(0, host);
}

function canListen(port: number, host: string): Promise<boolean> {
  return probePort(port, host).then(
    () => true,
    () => false,
  );
}

function probePort(port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.unref();
    probe.once('error', reject);
    probe.listen(port, host, () => {
      const address = probe.address();
      probe.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/**
 * Polls `url` until it answers with a status accepted by `ok` (default: any response at all), or fails
 * after `timeoutMs` with the last error. Use it for child processes that print nothing useful when ready.
 */
export async function waitForUrl(
  url: string | URL,
  options: { timeoutMs?: number; intervalMs?: number; fetch?: typeof fetch; ok?: (status: number) => boolean } = {},
): Promise<Response> {
  const { timeoutMs = 15_000, intervalMs = 100, ok = () => true } = options;
  const fetchFn = options.fetch ?? fetch;
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const response = await fetchFn(url, { redirect: 'manual', signal: AbortSignal.timeout(Math.max(500, intervalMs * 5)) });
      if (ok(response.status)) return response;
      await response.body?.cancel();
      last = new Error(`status ${response.status}`);
    } catch (error) {
      last = error;
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
  throw new Error(`waitForUrl: ${String(url)} did not answer within ${timeoutMs} ms (last: ${String(last)})`, { cause: last });
}

/** Listens on an ephemeral loopback port and resolves with it. */
export function listen(server: Server, host = '127.0.0.1', port = 0): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      const address = server.address();
      if (typeof address === 'object' && address) resolve(address.port);
      else reject(new Error('server has no port'));
    });
  });
}

/** Stops listening and drops every open connection (keep-alive sockets included), like a process dying. */
export function closeServer(server: Server): Promise<void> {
  return new Promise((resolve, reject) => {
    if (!server.listening) {
      server.closeAllConnections();
      resolve();
      return;
    }
    server.close((error) => (error ? reject(error) : resolve()));
    server.closeAllConnections();
  });
}
