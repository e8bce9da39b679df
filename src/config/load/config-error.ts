/**
 * The one error a configuration load throws: every problem found, each with its key path and where
 * the value came from (a line of the file, or the environment variable that set it).
 */
import { ErrorCode, GatewayError } from '../../core/errors.ts';

export interface ConfigProblem {
  /** Key path such as `servers[0].upstream.url`; empty for problems with the file as a whole. */
  path: string;
  message: string;
  line?: number;
  column?: number;
  /** Where the value came from: the config file, or the environment variable that set it. */
  source?: string;
}

/** Every problem of one load (ERR_CONFIG_INVALID); the message is the full report. */
export class ConfigError extends GatewayError {
  readonly problems: ConfigProblem[];
  /** The configuration file, when one was read. */
  readonly file?: string;
  constructor(problems: ConfigProblem[], file?: string) {
    super(ErrorCode.CONFIG_INVALID, 'invalid configuration');
    this.name = 'ConfigError';
    this.problems = problems;
    this.file = file;
    // The full report as the message, so an uncaught ConfigError is still readable.
    this.message = formatConfigError(this);
  }
}

/**
 * ```
 * config error: 2 problems in gateway.yaml
 *   servers[0].path (line 12): must start with / and not end with /
 *   listen.port (from MCP_GATEWAY_LISTEN__PORT): expected a number, got a string
 * ```
 */
export function formatConfigError(error: unknown): string {
  if (!(error instanceof ConfigError)) return `config error: ${error instanceof Error ? error.message : String(error)}`;
  const count = error.problems.length;
  const header = `config error: ${count} problem${count === 1 ? '' : 's'}${error.file ? ` in ${error.file}` : ''}`;
  const lines = error.problems.map((problem) => {
    const where: string[] = [];
    if (problem.line !== undefined) where.push(problem.column !== undefined ? `line ${problem.line}:${problem.column}` : `line ${problem.line}`);
    if (problem.source && problem.source !== error.file) where.push(problem.path ? `from ${problem.source}` : problem.source);
    if (!problem.path) return `  ${where.join(', ') || '(configuration)'}: ${problem.message}`;
    return `  ${problem.path}${where.length > 0 ? ` (${where.join(', ')})` : ''}: ${problem.message}`;
  });
  return [header, ...lines].join('\n');
}
