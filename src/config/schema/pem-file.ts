/**
 * `extraCaCertificatesFile` checked while the configuration is validated: the gateway reads it at
 * start-up, so a missing or wrong file must be a configuration problem (with its key and line) that
 * `config check` reports too, not a crash of `serve`.
 */
import { readFileSync } from 'node:fs';

/** What is wrong with the file at `path` as PEM CA certificates, or undefined when nothing is. */
export function pemFileProblem(path: string): string | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    return `cannot read the file (${typeof code === 'string' ? code : 'read failed'})`;
  }
  // RFC 7468 §5.1: certificates are labelled CERTIFICATE; anything else (a key, DER bytes) is a mistake.
  if (!text.includes('-----BEGIN CERTIFICATE-----')) return 'holds no PEM certificate (-----BEGIN CERTIFICATE-----)';
  return undefined;
}
