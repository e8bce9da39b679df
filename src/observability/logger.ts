/**
 * JSON logs with pino. Secrets are redacted by key wherever they appear, so a careless `log.info({ req })`
 * cannot leak a bearer token, cookie, password or IdP token.
 */
import cluster from 'node:cluster';
import { type Logger, pino } from 'pino';

export type { Logger };

const REDACTED_KEYS = [
  'authorization',
  'cookie',
  'set-cookie',
  'password',
  'passwordHash',
  'client_secret',
  'clientSecret',
  'access_token',
  'accessToken',
  'refresh_token',
  'refreshToken',
  'id_token',
  'idToken',
  'code_verifier',
  'codeVerifier',
  'encryptionKeys',
  'cookieSecret',
  'token',
];
// Not `code`: that key carries error codes (ECONNREFUSED, UND_ERR_HEADERS_TIMEOUT) operators need, and
// authorization codes are never logged under any key.

/** Redaction paths: the key at the top level, one level down, and inside request headers. */
export const REDACT_PATHS = [
  ...REDACTED_KEYS.map((key) => `["${key}"]`),
  ...REDACTED_KEYS.map((key) => `*["${key}"]`),
  ...REDACTED_KEYS.map((key) => `*.headers["${key}"]`),
];

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      // Under `workers: N` (src/cli/workers.ts) every line names its worker, by number.
      base: cluster.worker === undefined ? { service: 'mcp-oauth-gateway' } : { service: 'mcp-oauth-gateway', worker: cluster.worker.id },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination ?? pino.destination({ sync: false }),
  );
}
