/**
 * Loading the configuration: YAML file (optional) -> `${file:}`/`${env:}` references -> environment
 * overrides -> unknown-key check -> schema validation. Every problem found on the way is collected
 * (./load-report.ts) and thrown together as one ConfigError, each with the line it came from (or the
 * variable that set it), so an operator fixes a file in one pass instead of one error per restart.
 */
import { readFile } from 'node:fs/promises';
import { dirname, resolve as resolvePath } from 'node:path';
import { ConfigError } from './load/config-error.ts';
import { applyEnvironment, CONFIG_PATH_ENV } from './load/env-overrides.ts';
import { readFailure } from './load/file-text.ts';
import { describeIssue } from './load/issue-messages.ts';
import type { PathSegment } from './load/key-path.ts';
import { LoadReport } from './load/load-report.ts';
import { resolveReferences } from './load/references.ts';
import { configJsonSchema, findUnknownKeys } from './load/schema-walker.ts';
import { parseConfigYaml } from './load/yaml-source.ts';
import { configSchema, type GatewayConfig } from './schema.ts';

export { ConfigError, type ConfigProblem, formatConfigError } from './load/config-error.ts';

export interface LoadConfigOptions {
  /** YAML file; defaults to $MCP_GATEWAY_CONFIG; neither means "all defaults plus environment". */
  path?: string;
  env?: Record<string, string | undefined>;
}

/** The validated configuration, or a ConfigError (ERR_CONFIG_INVALID) listing every problem. */
export async function loadConfig(options: LoadConfigOptions = {}): Promise<GatewayConfig> {
  const env = options.env ?? process.env;
  const file = options.path ?? nonEmpty(env[CONFIG_PATH_ENV]);
  const report = new LoadReport(file);

  let data: Record<string, unknown> = {};
  if (file !== undefined) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (error) {
      throw new ConfigError([{ path: '', message: `cannot read the configuration file (${readFailure(error)})`, source: file }], file);
    }
    const parsed = parseConfigYaml(text, report);
    if (parsed === undefined) throw new ConfigError(report.finish(), file);
    data = parsed;
    await resolveReferences(data, dirname(resolvePath(file)), env, report);
    report.collectSecrets(data);
  }

  await applyEnvironment(data, env, report);
  for (const unknown of findUnknownKeys(configJsonSchema(), data)) {
    report.add(unknown.path, `unknown key${unknown.suggestion ? ` (did you mean "${unknown.suggestion}"?)` : ''}`);
  }

  const result = configSchema.safeParse(data);
  if (!result.success) {
    for (const issue of result.error.issues) {
      const path = issue.path.filter((segment): segment is PathSegment => typeof segment !== 'symbol');
      if (!report.alreadyFailed(path)) report.add(path, describeIssue(issue, path, data));
    }
  }
  report.collectSecrets(data);
  const problems = report.finish();
  if (problems.length > 0) throw new ConfigError(problems, file);
  return result.data as GatewayConfig;
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}
