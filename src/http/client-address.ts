/**
 * The address of the person's client, for rate limits, audit and the `X-Forwarded-For` the gateway
 * sends upstream. Behind reverse proxies the socket address is the nearest proxy's, and the client's
 * address is in `X-Forwarded-For`, where every proxy appends the address it received the request from.
 *
 * Only entries appended by proxies the gateway trusts count. The header is read from the right (the
 * nearest hop) and the walk stops at the first address that is not a trusted proxy: whatever a client
 * wrote into the header itself sits to the left of that point and is never taken (RFC 7239 §8.1 on
 * forged forwarding information; the same walk as proxy-addr, which does it here).
 *
 * `trustProxy`:
 * - `false` or `0`: no proxy; the socket address counts, whatever the header says.
 * - `true`: one proxy (a TLS terminator in front of the gateway): the entry it appended counts. It does
 *   not mean "believe every entry": the leftmost one is whatever the client sent.
 * - a number `n`: `n` proxies in a row, each appending one entry: the `n`-th entry from the right.
 * - a list of addresses, CIDR ranges and the names `loopback`, `linklocal`, `uniquelocal`: every hop
 *   whose address is on the list is a trusted proxy, however many there are.
 */
import type { IncomingMessage } from 'node:http';
import proxyAddr from 'proxy-addr';
import { ErrorCode, GatewayError } from '../core/errors.ts';

export type TrustProxy = boolean | number | readonly string[];

export type ClientAddressResolver = (req: IncomingMessage) => string | undefined;

/**
 * Builds the resolver once, at start-up (a list is compiled here, and a bad entry fails here with
 * ERR_HTTP_TRUST_PROXY_INVALID rather than on some request).
 */
export function clientAddressResolver(trustProxy: TrustProxy): ClientAddressResolver {
  const trust = trustFunction(trustProxy);
  if (trust === undefined) return socketAddress;
  return (req) => (req.socket.remoteAddress === undefined ? undefined : proxyAddr(req, trust));
}

function socketAddress(req: IncomingMessage): string | undefined {
  return req.socket.remoteAddress;
}

/** proxy-addr's question for each hop, nearest first: is the address at position `i` a trusted proxy? */
function trustFunction(trustProxy: TrustProxy): ((address: string, i: number) => boolean) | undefined {
  if (trustProxy === false || trustProxy === 0) return undefined;
  if (trustProxy === true) return (_address, i) => i < 1;
  if (typeof trustProxy === 'number') {
    if (!Number.isInteger(trustProxy) || trustProxy < 0) {
      throw new GatewayError(ErrorCode.HTTP_TRUST_PROXY_INVALID, `trustProxy: a hop count must be a whole number >= 0, not ${trustProxy}`);
    }
    return (_address, i) => i < trustProxy;
  }
  if (trustProxy.length === 0) return undefined;
  try {
    return proxyAddr.compile([...trustProxy]);
  } catch (error) {
    throw new GatewayError(ErrorCode.HTTP_TRUST_PROXY_INVALID, `trustProxy: ${(error as Error).message}`, { cause: error });
  }
}
