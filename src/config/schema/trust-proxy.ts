/**
 * `trustProxy`: which peers may tell the gateway the client's address (`X-Forwarded-For`). Scheme and
 * host are never taken from a request: every URL the gateway publishes comes from `publicUrl`. The three forms are those of proxy-addr, which the gateway uses to resolve the
 * address, and each entry of a list is compiled by it here, so a typo is a configuration problem at its
 * index instead of a start-up crash (or, worse, a proxy that is silently not trusted).
 */
import proxyAddr from 'proxy-addr';
import { z } from 'zod';

/** Names proxy-addr expands to address ranges (RFC 6890 special-purpose blocks). */
export const PROXY_RANGE_NAMES = ['loopback', 'linklocal', 'uniquelocal'] as const;

/** Why proxy-addr refuses `entry`, or undefined when it accepts it. */
export function trustedProxyProblem(entry: string): string | undefined {
  try {
    proxyAddr.compile([entry]);
    return undefined;
  } catch {
    return `must be an IP address, a CIDR range such as 10.0.0.0/8, or one of ${PROXY_RANGE_NAMES.join(', ')}`;
  }
}

export const trustProxySchema = z
  .union([
    z.boolean(),
    z.number().int().min(0),
    z.array(
      z.string().superRefine((entry, ctx) => {
        const problem = trustedProxyProblem(entry);
        if (problem) ctx.addIssue({ code: 'custom', message: problem });
      }),
    ),
  ])
  .default(false)
  .describe(
    'Which proxies in front of the gateway are trusted for `X-Forwarded-For` (the client address behind rate limits, logs and the `X-Forwarded-For` sent upstream; scheme and host always come from `publicUrl`): `false` (none: the socket address is the client), `true` (one proxy, such as a TLS terminator: the entry it appended is the client; entries to its left are whatever the client sent), a number of hops (`1`: the nearest proxy), or a list of addresses, CIDR ranges and the names `loopback`, `linklocal`, `uniquelocal` (for example `[loopback, 10.0.0.0/8]`).',
  );

/** `false`, `true`, a hop count, or trusted addresses/ranges, as proxy-addr takes them. */
export type TrustProxySetting = z.output<typeof trustProxySchema>;
