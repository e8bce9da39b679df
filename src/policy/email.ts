/**
 * Email addresses and domains in one comparable form, for allow-lists.
 *
 * The domain of an address is the part after the LAST `@` (RFC 5321 §4.1.2: a local part may itself
 * contain a quoted `@`, the domain never does), so `alice@example.com@evil.com` belongs to `evil.com`.
 * Domains are compared in their ASCII (A-label) form, lowercased, so `BÜCHER.example` and
 * `xn--bcher-kva.example` are one domain (RFC 5890 §2.3.2.1). Anything that is not a plain host name
 * (IP literals, `%`-escapes, `*`, `_`, empty labels, a trailing dot) is not a domain here: such an
 * address matches no rule rather than being folded into something it might not be.
 */
import { domainToASCII } from 'node:url';

/** One DNS label in ASCII: letters, digits and inner hyphens, 1 to 63 characters (RFC 1035 §2.3.1). */
const ASCII_LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;
/** Before conversion: a label may also hold non-ASCII letters, but none of the characters URL host parsing would decode or accept. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is this pattern's purpose.
const RAW_DOMAIN = /^[^\s%*_@[\]/\\:?#\x00-\x1f\x7f]+$/u;
// biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is this pattern's purpose.
const CONTROL_OR_SPACE = /[\s\x00-\x1f\x7f]/u;

/** The domain in comparable form (lowercase A-labels), or undefined when it is not a plain host name. */
export function normaliseDomain(value: string): string | undefined {
  if (!RAW_DOMAIN.test(value) || value.endsWith('.') || value.length > 253) return undefined;
  const ascii = domainToASCII(value.normalize('NFC'));
  if (!ascii || ascii.length > 253) return undefined;
  const labels = ascii.split('.');
  if (labels.length < 2 || !labels.every((label) => ASCII_LABEL.test(label))) return undefined;
  return ascii;
}

export interface NormalisedEmail {
  /** `local@domain`, the local part lowercased (Unicode NFC), the domain in A-label form. */
  address: string;
  domain: string;
}

/**
 * The address in comparable form, or undefined when it is not a usable address. The local part is
 * compared case-insensitively: RFC 5321 allows case-sensitive mailboxes, but no IdP the gateway talks
 * to issues two accounts that differ only in case, and admins write addresses in any case.
 */
export function normaliseEmail(value: string): NormalisedEmail | undefined {
  const at = value.lastIndexOf('@');
  if (at <= 0 || at === value.length - 1 || value.length > 320) return undefined;
  const local = value.slice(0, at);
  if (CONTROL_OR_SPACE.test(local)) return undefined;
  const domain = normaliseDomain(value.slice(at + 1));
  if (!domain) return undefined;
  return { address: `${local.normalize('NFC').toLowerCase()}@${domain}`, domain };
}
