/**
 * The address of the person's client, for rate limits and audit. Behind a TLS-terminating proxy the
 * socket address is the proxy's, so with `trustProxy` the nearest X-Forwarded-For entry is used: the
 * one our proxy appended, which a client cannot forge (entries to its left are client-supplied).
 */
import type { IncomingMessage } from 'node:http';

export function clientAddressResolver(trustProxy: boolean): (req: IncomingMessage) => string | undefined {
  if (!trustProxy) return (req) => req.socket.remoteAddress;
  return (req) => {
    const forwarded = req.headers['x-forwarded-for'];
    const list = (Array.isArray(forwarded) ? forwarded.join(',') : forwarded ?? '').split(',').map((entry) => entry.trim()).filter(Boolean);
    return list.at(-1) ?? req.socket.remoteAddress;
  };
}
