/**
 * JSON logs with pino. Secrets are censored by key wherever they appear (redaction.ts), so a careless
 * `log.info({ req })` cannot leak a bearer token, cookie, password or IdP token.
 *
 * Given the audit logger, the operational logger also copies every audit event it is handed to it
 * (audit.ts, `AUDIT_EVENT_PREFIXES`): the rooms log security decisions once, where they always have.
 */
import cluster from 'node:cluster';
import { type Logger, pino } from 'pino';
import { auditHooks } from './audit.ts';
import { censorSecrets, censorSerializedError } from './redaction.ts';

export { censorSecrets, REDACTED_KEYS } from './redaction.ts';
export type { Logger };

const INFO = 30;

export function createLogger(level: string, destination?: pino.DestinationStream, audit?: Logger): Logger {
  // With an audit logger, info-level audit events must reach the copy hook even when operators asked
  // for `warn`: the logger runs at info at least, and the hook drops what is below `level`.
  const threshold = pino.levels.values[level] ?? INFO;
  const effective = audit !== undefined && level !== 'silent' && threshold > INFO ? 'info' : level;
  const logger = pino(
    {
      level: audit !== undefined && level === 'silent' ? 'info' : effective,
      // Under `workers: N` (src/cli/workers.ts) every line names its worker, by number.
      base: cluster.worker === undefined ? { service: 'mcp-oauth-gateway' } : { service: 'mcp-oauth-gateway', worker: cluster.worker.id },
      formatters: { log: censorSecrets, bindings: censorSecrets },
      serializers: { err: (error: unknown) => censorSerializedError(pino.stdSerializers.err(error as Error)) },
      timestamp: pino.stdTimeFunctions.isoTime,
      ...(audit === undefined ? {} : { hooks: auditHooks(audit, level === 'silent' ? Number.POSITIVE_INFINITY : threshold) }),
    },
    destination ?? pino.destination({ sync: false }),
  );
  // pino formats only the root's bindings; a child's (and its children's, which inherit this) are censored here.
  const child = logger.child;
  logger.child = function censoredChild(this: Logger, bindings, options) {
    return child.call(this, censorSecrets(bindings), options);
  } as typeof logger.child;
  return logger;
}
