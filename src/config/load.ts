/**
 * Loading the configuration: YAML file (optional) -> `${file:}`/`${env:}` references -> environment
 * overrides -> unknown-key check -> schema validation. Every problem found on the way is collected and
 * thrown together as one ConfigError, each with the line it came from (or the variable that set it), so
 * an operator fixes a file in one pass instead of one error per restart.
 *
 * The loader walks the JSON Schema that zod derives from `configSchema` (public API, stable) to know
 * which keys exist and what type each expects; that is how environment variables find their key and get
 * coerced, and how unknown keys are found without making every schema object strict (strict objects
 * inside unions would turn a typo into an unreadable "no union member matched").
 */
import { readFile } from 'node:fs/promises';
import { dirname, resolve as resolvePath } from 'node:path';
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument, type Document } from 'yaml';
import { z } from 'zod';
import { ErrorCode, GatewayError } from '../core/errors.ts';
import { configSchema, type GatewayConfig } from './schema.ts';

export const ENV_PREFIX = 'MCP_GATEWAY_';
/** Names the file to load; it is not a configuration key, so it is exempt from the unknown-variable check. */
export const CONFIG_PATH_ENV = 'MCP_GATEWAY_CONFIG';
const RESERVED_ENV = new Set([CONFIG_PATH_ENV]);

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

export interface LoadConfigOptions {
  /** YAML file; defaults to $MCP_GATEWAY_CONFIG; neither means "all defaults plus environment". */
  path?: string;
  env?: Record<string, string | undefined>;
}

export async function loadConfig(options: LoadConfigOptions = {}): Promise<GatewayConfig> {
  const env = options.env ?? process.env;
  const file = options.path ?? nonEmpty(env[CONFIG_PATH_ENV]);
  const session = new LoadSession(file, env);

  let data: Record<string, unknown> = {};
  if (file !== undefined) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (error) {
      throw new ConfigError([{ path: '', message: `cannot read the configuration file (${errorCode(error)})`, source: file }], file);
    }
    const parsed = session.parseYaml(text);
    if (parsed === undefined) throw new ConfigError(session.finish(), file);
    data = parsed;
    await session.resolveReferences(data, dirname(resolvePath(file)));
    session.collectSecrets(data);
  }

  await session.applyEnvironment(data);
  session.checkUnknownKeys(configJsonSchema(), data, []);

  const result = configSchema.safeParse(data);
  if (!result.success) session.addZodIssues(result.error.issues, data);
  session.collectSecrets(data);
  const problems = session.finish();
  if (problems.length > 0) throw new ConfigError(problems, file);
  return result.data as GatewayConfig;
}

// ---------------------------------------------------------------------------------------------------
// The schema as JSON Schema: which keys exist, and what each one expects.

export type PathSegment = string | number;

/** The subset of JSON Schema that zod emits for this configuration. */
export interface JsonSchema {
  type?: string;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  items?: JsonSchema;
  additionalProperties?: JsonSchema | boolean;
  oneOf?: JsonSchema[];
  anyOf?: JsonSchema[];
  const?: unknown;
  enum?: unknown[];
  default?: unknown;
  description?: string;
  format?: string;
  pattern?: string;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  minItems?: number;
  minLength?: number;
  $ref?: string;
  $defs?: Record<string, JsonSchema>;
}

let cachedJsonSchema: JsonSchema | undefined;

/** `configSchema` as JSON Schema (input side: what may be written, with defaults). */
export function configJsonSchema(): JsonSchema {
  // `unrepresentable: 'any'` because refinements (superRefine) have no JSON Schema form; they are
  // still enforced by zod, this view is only about keys and types.
  cachedJsonSchema ??= z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any' }) as JsonSchema;
  return cachedJsonSchema;
}

export function deref(node: JsonSchema): JsonSchema {
  const ref = node.$ref;
  if (!ref?.startsWith('#/$defs/')) return node;
  return configJsonSchema().$defs?.[ref.slice('#/$defs/'.length)] ?? node;
}

export function unionVariants(node: JsonSchema): JsonSchema[] | undefined {
  const variants = node.oneOf ?? node.anyOf;
  return variants?.map(deref);
}

/**
 * The union member that `value` is meant to be: the one whose `const` properties (the discriminator,
 * such as `type: oidc`) all match, else the object variant sharing the most keys with it.
 */
function pickVariant(variants: JsonSchema[], value: unknown): JsonSchema | undefined {
  if (!isPlainObject(value)) return undefined;
  const discriminated = variants.filter((variant) => Object.values(variant.properties ?? {}).some((prop) => prop.const !== undefined));
  if (discriminated.length === variants.length) {
    return variants.find((variant) =>
      Object.entries(variant.properties ?? {}).every(([key, prop]) => prop.const === undefined || value[key] === prop.const),
    );
  }
  let best: JsonSchema | undefined;
  let bestScore = 0;
  for (const variant of variants) {
    const score = Object.keys(value).filter((key) => key in (variant.properties ?? {})).length;
    if (score > bestScore) {
      best = variant;
      bestScore = score;
    }
  }
  return best;
}

/** The schema of `parent[segment]`, choosing union members by the data where it has to. */
function childSchema(node: JsonSchema, segment: PathSegment, value: unknown): JsonSchema | undefined {
  node = deref(node);
  const variants = unionVariants(node);
  if (variants) {
    const picked = pickVariant(variants, value);
    if (picked) return childSchema(picked, segment, value);
    for (const variant of variants) {
      const found = childSchema(variant, segment, value);
      if (found) return found;
    }
    return undefined;
  }
  if (typeof segment === 'number') return node.type === 'array' && node.items ? deref(node.items) : undefined;
  const prop = node.properties?.[segment];
  if (prop) return deref(prop);
  return typeof node.additionalProperties === 'object' ? deref(node.additionalProperties) : undefined;
}

export function schemaAt(path: readonly PathSegment[], data: unknown): JsonSchema | undefined {
  let node: JsonSchema | undefined = configJsonSchema();
  let value = data;
  for (const segment of path) {
    node = childSchema(node, segment, value);
    if (!node) return undefined;
    value = isPlainObject(value) || Array.isArray(value) ? (value as Record<PathSegment, unknown>)[segment] : undefined;
  }
  return node;
}

/** What a key expects, roughly: enough to coerce an environment string. */
function kindOf(node: JsonSchema | undefined): string {
  if (!node) return 'unknown';
  node = deref(node);
  const variants = unionVariants(node);
  if (variants) {
    const kinds = new Set(variants.map(kindOf));
    return kinds.size === 1 ? [...kinds][0]! : 'union';
  }
  if (node.type) return node.type;
  if (node.const !== undefined) return typeof node.const;
  if (node.enum) return 'string';
  return 'unknown';
}

// ---------------------------------------------------------------------------------------------------
// Environment variable names.

/** `encryptionKeys` -> `ENCRYPTION_KEYS`. */
export function screamingSnake(key: string): string {
  return key.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase();
}

/** The variable for a key path; string segments such as `<N>` are kept as placeholders. */
export function envVarName(path: readonly PathSegment[]): string {
  return ENV_PREFIX + path.map((segment) => (typeof segment === 'number' || /^<.*>$/.test(segment) ? String(segment) : screamingSnake(segment))).join('__');
}

/** The key path a variable name addresses (`LISTEN__PORT` -> ['listen', 'port']), or undefined. */
function pathForEnv(segments: string[], data: unknown): PathSegment[] | undefined {
  let node: JsonSchema | undefined = configJsonSchema();
  let value = data;
  const path: PathSegment[] = [];
  for (const segment of segments) {
    if (!node || segment === '') return undefined;
    node = deref(node);
    let next: PathSegment | undefined;
    if (/^\d+$/.test(segment)) {
      if (kindOf(node) !== 'array') return undefined;
      next = Number(segment);
    } else {
      // Search the member the data selects first, then every member (the key may create a new entry).
      const variants = unionVariants(node);
      const candidates = variants ? [pickVariant(variants, value), ...variants].filter((v) => v !== undefined) : [node];
      next = candidates.flatMap((candidate) => Object.keys(candidate.properties ?? {})).find((key) => screamingSnake(key) === segment);
      if (next === undefined) return undefined;
    }
    node = childSchema(node, next, value);
    value = isPlainObject(value) || Array.isArray(value) ? (value as Record<PathSegment, unknown>)[next] : undefined;
    path.push(next);
  }
  return node ? path : undefined;
}

// ---------------------------------------------------------------------------------------------------
// One load: collects problems, remembers where values came from and which values are secret.

/** Keys whose values must never appear in a message. */
const SECRET_KEY = /secret|password|key|token/i;
const REFERENCE = /^\$\{(file|env):([^}]*)\}$/;

interface EnvOverride {
  name: string;
  path: PathSegment[];
  fromFile: boolean;
  raw: string;
}

class LoadSession {
  readonly #file: string | undefined;
  readonly #env: Record<string, string | undefined>;
  readonly #problems: ConfigProblem[] = [];
  readonly #secrets = new Set<string>();
  /** Paths whose value already produced a problem; schema issues at or under them would repeat it. */
  readonly #failedPaths: PathSegment[][] = [];
  readonly #envPaths: { path: PathSegment[]; name: string }[] = [];
  #doc: Document | undefined;
  readonly #lines = new LineCounter();

  constructor(file: string | undefined, env: Record<string, string | undefined>) {
    this.#file = file;
    this.#env = env;
  }

  /** The document's top-level mapping as plain data, or undefined when the YAML cannot be used. */
  parseYaml(text: string): Record<string, unknown> | undefined {
    // prettyErrors off: the pretty form quotes the offending source line, which may hold a secret.
    // merge on: `<<: *defaults` is the usual way to share settings between servers.
    const doc = parseDocument(text, { prettyErrors: false, lineCounter: this.#lines, uniqueKeys: true, merge: true });
    this.#doc = doc;
    let fatal = false;
    for (const error of [...doc.errors, ...doc.warnings]) {
      const { line, col } = this.#lines.linePos(error.pos[0]);
      let message = error.message;
      if (error.code === 'DUPLICATE_KEY') {
        // The error marks only the key's first character; the key runs to its `:` (or closing quote).
        const key = /^("[^"\n]*"|'[^'\n]*'|[^:\n,{}]*)/.exec(text.slice(error.pos[0]))?.[1]?.trim().replace(/^(["'])(.*)\1$/, '$2') ?? '';
        message = `duplicate key${key && key.length <= 80 ? ` "${key}"` : ''}: each key may appear only once`;
      } else {
        fatal = true;
      }
      this.#problems.push({ path: '', message, line, column: col, source: this.#file });
    }
    // A syntax error leaves the structure uncertain, and schema errors about a half-read file would
    // mislead; duplicate keys leave it intact, so those are reported together with everything else.
    if (fatal) return undefined;
    const contents = doc.contents;
    if (contents === null || (isScalar(contents) && (contents.value === null || contents.value === undefined))) return {};
    if (!isMap(contents)) {
      this.#problems.push({ path: '', message: 'the configuration must be a mapping of keys to values', ...this.#locate([]), source: this.#file });
      return undefined;
    }
    const data: unknown = doc.toJS({ maxAliasCount: 100 });
    return isPlainObject(data) ? data : {};
  }

  /**
   * Replaces `${file:/path}` and `${env:NAME}` string values, in place. Relative file paths are relative
   * to the configuration file, so a config and its secrets directory can move together.
   */
  async resolveReferences(root: Record<string, unknown>, baseDir: string): Promise<void> {
    await this.#resolveIn(root, root, [], baseDir);
  }

  async #resolveIn(root: Record<string, unknown>, value: unknown, path: PathSegment[], baseDir: string): Promise<void> {
    if (!isPlainObject(value) && !Array.isArray(value)) return;
    const entries: [PathSegment, unknown][] = Array.isArray(value) ? value.map((item, index) => [index, item]) : Object.entries(value);
    for (const [key, item] of entries) {
      const itemPath = [...path, key];
      if (typeof item !== 'string') {
        await this.#resolveIn(root, item, itemPath, baseDir);
        continue;
      }
      const match = REFERENCE.exec(item);
      if (!match) {
        if (/\$\{(file|env):/.test(item)) {
          this.#fileProblem(itemPath, '${file:...} and ${env:...} must be the whole value, not part of it');
        }
        continue;
      }
      const [, kind, target = ''] = match;
      let resolved: unknown;
      if (kind === 'env') {
        const envValue = this.#env[target];
        if (envValue === undefined || target === '') {
          this.#fileProblem(itemPath, `environment variable "${target}" is not set`);
          continue;
        }
        resolved = envValue;
      } else {
        const filePath = resolvePath(baseDir, target);
        let content: string;
        try {
          content = (await readFile(filePath, 'utf8')).trim();
        } catch (error) {
          this.#fileProblem(itemPath, `cannot read file "${target}" (${errorCode(error)})`);
          continue;
        }
        // Files referenced from the config are where secrets live; keep their contents out of messages.
        this.#rememberSecret(content);
        // A list key (encryptionKeys) takes one item per line, as the `_FILE` variables do.
        resolved = kindOf(schemaAt(itemPath, root)) === 'array' ? splitLines(content) : content;
        if (Array.isArray(resolved)) resolved.forEach((line) => this.#rememberSecret(line));
      }
      (value as Record<PathSegment, unknown>)[key] = resolved;
    }
  }

  /** `MCP_GATEWAY_LISTEN__PORT=9000`, `MCP_GATEWAY_SECRETS__ENCRYPTION_KEYS_FILE=/run/secrets/keys`, ... */
  async applyEnvironment(data: Record<string, unknown>): Promise<void> {
    const overrides: EnvOverride[] = [];
    const direct = new Map<string, string>();
    for (const [name, raw] of Object.entries(this.#env).sort(([a], [b]) => (a < b ? -1 : 1))) {
      // Empty means unset: compose files and shells often pass `VAR=` for a variable they do not have.
      if (!name.startsWith(ENV_PREFIX) || RESERVED_ENV.has(name) || raw === undefined || raw === '') continue;
      const rest = name.slice(ENV_PREFIX.length);
      // The key itself wins over the `_FILE` reading, so a key named `...File` is still settable.
      let path = pathForEnv(rest.split('__'), data);
      let fromFile = false;
      if (!path && rest.endsWith('_FILE')) {
        path = pathForEnv(rest.slice(0, -'_FILE'.length).split('__'), data);
        fromFile = path !== undefined;
      }
      if (!path) {
        this.#problems.push({ path: '', message: 'unknown environment variable: it matches no configuration key', source: name });
        continue;
      }
      const key = formatPath(path);
      const other = direct.get(key);
      if (other !== undefined) {
        this.#problems.push({ path: key, message: `set by both ${other} and ${name}; use only one`, source: name });
        continue;
      }
      direct.set(key, name);
      overrides.push({ name, path, fromFile, raw });
    }
    // Whole objects first, then the keys inside them, so `SERVERS__0__PATH` refines `SERVERS`.
    overrides.sort((a, b) => a.path.length - b.path.length);
    for (const override of overrides) await this.#applyOverride(data, override);
  }

  async #applyOverride(data: Record<string, unknown>, override: EnvOverride): Promise<void> {
    const { name, path } = override;
    let text = override.raw;
    if (override.fromFile) {
      try {
        text = (await readFile(override.raw, 'utf8')).trim();
      } catch (error) {
        this.#envProblem(path, name, `cannot read file "${override.raw}" (${errorCode(error)})`);
        return;
      }
      // `_FILE` exists for secrets; whatever it held must not be echoed back.
      this.#rememberSecret(text);
      splitLines(text).forEach((line) => this.#rememberSecret(line));
    }
    const node = schemaAt(path, data);
    const coerced = coerce(text, node, override.fromFile ? 'lines' : 'commas');
    if ('error' in coerced) {
      this.#envProblem(path, name, coerced.error);
      return;
    }
    setIn(data, path, coerced.value);
    this.#envPaths.push({ path, name });
  }

  /** Reports keys the schema does not have; zod would silently drop them (a typo would go unnoticed). */
  checkUnknownKeys(node: JsonSchema | undefined, value: unknown, path: PathSegment[]): void {
    if (!node) return;
    node = deref(node);
    const variants = unionVariants(node);
    if (variants) {
      // When the data matches no member, zod reports that; guessing the keys' meaning would only add noise.
      const picked = pickVariant(variants, value);
      if (picked) this.checkUnknownKeys(picked, value, path);
      return;
    }
    if (Array.isArray(value)) {
      if (node.type === 'array' && node.items) value.forEach((item, index) => this.checkUnknownKeys(node.items, item, [...path, index]));
      return;
    }
    if (!isPlainObject(value) || node.type !== 'object') return;
    const known = node.properties ?? {};
    for (const [key, item] of Object.entries(value)) {
      const prop = known[key];
      if (prop) {
        this.checkUnknownKeys(prop, item, [...path, key]);
      } else if (typeof node.additionalProperties === 'object') {
        this.checkUnknownKeys(node.additionalProperties, item, [...path, key]);
      } else if (node.properties) {
        const suggestion = closestKey(key, Object.keys(known));
        this.#add([...path, key], `unknown key${suggestion ? ` (did you mean "${suggestion}"?)` : ''}`);
      }
    }
  }

  addZodIssues(issues: readonly z.core.$ZodIssue[], data: unknown): void {
    for (const issue of issues) {
      const path = issue.path.filter((segment): segment is PathSegment => typeof segment !== 'symbol');
      if (this.#failedPaths.some((failed) => startsWith(path, failed))) continue;
      this.#add(path, describeIssue(issue, path, data));
    }
  }

  /** Every problem, secrets scrubbed, file problems in line order. */
  finish(): ConfigProblem[] {
    const secrets = [...this.#secrets].sort((a, b) => b.length - a.length);
    const scrub = (text: string): string => secrets.reduce((out, secret) => out.split(secret).join('[redacted]'), text);
    return this.#problems
      .map((problem, index) => ({ problem: { ...problem, message: scrub(problem.message), path: scrub(problem.path) }, index }))
      .sort((a, b) => (a.problem.line ?? Infinity) - (b.problem.line ?? Infinity) || a.index - b.index)
      .map(({ problem }) => problem);
  }

  /** Adds a problem, attributed to the variable that set the value, else to its line in the file. */
  #add(path: PathSegment[], message: string): void {
    const fromEnv = [...this.#envPaths].reverse().find((entry) => startsWith(path, entry.path));
    if (fromEnv) {
      this.#problems.push({ path: formatPath(path), message, source: fromEnv.name });
    } else {
      this.#problems.push({ path: formatPath(path), message, ...(this.#doc ? this.#locate(path) : {}), ...(this.#file ? { source: this.#file } : {}) });
    }
  }

  #fileProblem(path: PathSegment[], message: string): void {
    this.#failedPaths.push(path);
    this.#problems.push({ path: formatPath(path), message, ...this.#locate(path), source: this.#file });
  }

  #envProblem(path: PathSegment[], name: string, message: string): void {
    this.#failedPaths.push(path);
    this.#problems.push({ path: formatPath(path), message, source: name });
  }

  #rememberSecret(value: string): void {
    // Very short strings would scrub ordinary words out of messages while protecting nothing.
    if (value.length >= 4) this.#secrets.add(value);
  }

  /** Values under secret-named keys (clientSecret, encryptionKeys, ...), whatever their source. */
  collectSecrets(data: unknown): void {
    const visit = (value: unknown, secret: boolean): void => {
      if (typeof value === 'string') {
        if (secret) this.#rememberSecret(value);
      } else if (Array.isArray(value)) {
        value.forEach((item) => visit(item, secret));
      } else if (isPlainObject(value)) {
        for (const [key, item] of Object.entries(value)) visit(item, secret || SECRET_KEY.test(key));
      }
    };
    visit(data, false);
  }

  /**
   * The line of the key at `path`, or of its nearest existing parent (a missing key is reported at the
   * mapping that should hold it). The root itself has no useful line.
   */
  #locate(path: readonly PathSegment[]): { line?: number; column?: number } {
    const doc = this.#doc;
    if (!doc) return {};
    let node: unknown = doc.contents;
    let offset: number | undefined;
    if (path.length === 0) {
      const range = (node as { range?: [number, number, number] } | null)?.range;
      return range ? { line: this.#lines.linePos(range[0]).line } : {};
    }
    for (const segment of path) {
      if (isAlias(node)) break;
      if (isMap(node)) {
        const pair = node.items.find((item) => (isScalar(item.key) ? String(item.key.value) : String(item.key)) === String(segment));
        if (!pair) break;
        offset = (isScalar(pair.key) ? pair.key.range?.[0] : undefined) ?? (pair.value as { range?: number[] } | null)?.range?.[0] ?? offset;
        node = pair.value;
      } else if (isSeq(node) && typeof segment === 'number') {
        const item: unknown = node.items[segment];
        if (!item) break;
        offset = (item as { range?: number[] }).range?.[0] ?? offset;
        node = item;
      } else {
        break;
      }
    }
    return offset === undefined ? {} : { line: this.#lines.linePos(offset).line };
  }
}

// ---------------------------------------------------------------------------------------------------
// Messages.

function describeIssue(issue: z.core.$ZodIssue, path: PathSegment[], data: unknown): string {
  const value = valueAt(data, path);
  switch (issue.code) {
    case 'invalid_type': {
      if (value === undefined) return 'is required';
      return `expected ${TYPE_NAMES[issue.expected] ?? issue.expected}, got ${describeValue(value)}`;
    }
    case 'invalid_union': {
      if ('note' in issue && issue.note === 'No matching discriminator') {
        const options = ('options' in issue && Array.isArray(issue.options) ? issue.options : []).map(String).join(', ');
        return value === undefined ? `is required (one of: ${options})` : `must be one of: ${options}`;
      }
      if (issue.errors.length === 0) return issue.message;
      // Neither form fits: say what each form wanted, so "url or builtin" is visible.
      const forms = issue.errors.map((branch) =>
        branch
          .map((inner) => {
            const innerPath = inner.path.filter((segment): segment is PathSegment => typeof segment !== 'symbol');
            return `${formatPath(innerPath) || 'value'} ${describeIssue(inner, [...path, ...innerPath], data)}`;
          })
          .join(', '),
      );
      return `does not match any allowed form: ${forms.map((form) => `(${form})`).join(' or ')}`;
    }
    case 'invalid_value':
      return issue.values.length === 1 ? `must be ${JSON.stringify(issue.values[0])}` : `must be one of: ${issue.values.map(String).join(', ')}`;
    case 'invalid_format':
      if (issue.format === 'url') return 'must be an absolute URL';
      if (issue.format === 'email') return 'must be an email address';
      if (issue.format === 'regex' && issue.message.startsWith('Invalid string')) return `must match ${issue.pattern ?? 'the required pattern'}`;
      return issue.message;
    case 'too_small':
      if (issue.origin === 'array') return Number(issue.minimum) === 1 ? 'must not be empty' : `must have at least ${issue.minimum} entries`;
      if (issue.origin === 'string') return Number(issue.minimum) === 1 ? 'must not be empty' : `must be at least ${issue.minimum} characters`;
      return issue.inclusive === false ? `must be greater than ${issue.minimum}` : `must be at least ${issue.minimum}`;
    case 'too_big':
      if (issue.origin === 'array') return `must have at most ${issue.maximum} entries`;
      if (issue.origin === 'string') return `must be at most ${issue.maximum} characters`;
      return issue.inclusive === false ? `must be less than ${issue.maximum}` : `must be at most ${issue.maximum}`;
    default:
      return issue.message;
  }
}

const TYPE_NAMES: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  int: 'a whole number',
  boolean: 'true or false',
  array: 'a list',
  object: 'a mapping',
};

/** The kind of a value, never the value itself (it may be a secret). */
function describeValue(value: unknown): string {
  if (value === null) return 'an empty value';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'number' && !Number.isInteger(value)) return 'a fractional number';
  return TYPE_NAMES[typeof value] ?? typeof value;
}

/** `['servers', 0, 'upstream', 'url']` -> `servers[0].upstream.url`. */
export function formatPath(path: readonly PathSegment[]): string {
  let out = '';
  for (const segment of path) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else if (/^[A-Za-z_$][\w$-]*$/.test(segment)) out += out ? `.${segment}` : segment;
    else out += `[${JSON.stringify(segment)}]`;
  }
  return out;
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

// ---------------------------------------------------------------------------------------------------
// Small helpers.

type Coerced = { value: unknown } | { error: string };

/** An environment/file string as the type the key expects; a mismatch is left for zod to report. */
function coerce(text: string, node: JsonSchema | undefined, listStyle: 'lines' | 'commas'): Coerced {
  const kind = kindOf(node);
  const trimmed = text.trim();
  switch (kind) {
    case 'string':
      return { value: text };
    case 'integer':
    case 'number':
      return { value: /^[+-]?\d+(\.\d+)?([eE][+-]?\d+)?$/.test(trimmed) ? Number(trimmed) : text };
    case 'boolean': {
      const lower = trimmed.toLowerCase();
      if (['true', '1', 'yes', 'on'].includes(lower)) return { value: true };
      if (['false', '0', 'no', 'off'].includes(lower)) return { value: false };
      return { value: text };
    }
    case 'array': {
      if (trimmed.startsWith('[')) return parseJson(trimmed, 'a JSON list');
      const items = listStyle === 'lines' ? splitLines(trimmed) : trimmed.split(',').map((item) => item.trim()).filter((item) => item !== '');
      const itemNode = node ? deref(node).items : undefined;
      const values: unknown[] = [];
      for (const item of items) {
        const one = coerce(item, itemNode, listStyle);
        if ('error' in one) return one;
        values.push(one.value);
      }
      return { value: values };
    }
    case 'union': {
      // JSON first (it is exact); else a boolean or number member the text reads as; else the text
      // itself for a string member; else a comma-separated (or, from a file, line-separated) list.
      const json = parseJson(trimmed, 'JSON (for example {"key": "value"})');
      if (!('error' in json)) return json;
      const variants = unionVariants(deref(node!)) ?? [];
      for (const variant of variants) {
        if (!['boolean', 'number', 'integer'].includes(kindOf(variant))) continue;
        const one = coerce(text, variant, listStyle);
        if ('value' in one && typeof one.value !== 'string') return one;
      }
      if (variants.some((variant) => kindOf(variant) === 'string')) return { value: text };
      const list = variants.find((variant) => kindOf(variant) === 'array');
      return list && trimmed !== '' ? coerce(text, list, listStyle) : json;
    }
    case 'object':
      return parseJson(trimmed, 'JSON (for example {"key": "value"})');
    default: {
      const parsed = parseJson(trimmed, '');
      return 'error' in parsed ? { value: text } : parsed;
    }
  }
}

function parseJson(text: string, expected: string): Coerced {
  try {
    return { value: JSON.parse(text) as unknown };
  } catch {
    // Never the parser's message: V8 quotes the input in it, and the input may be a secret.
    return { error: `must be ${expected}; the value is not valid JSON` };
  }
}

function splitLines(text: string): string[] {
  return text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== '');
}

function setIn(root: Record<string, unknown>, path: readonly PathSegment[], value: unknown): void {
  let container: Record<PathSegment, unknown> = root;
  path.forEach((segment, index) => {
    if (index === path.length - 1) {
      container[segment] = value;
      return;
    }
    const next = path[index + 1];
    let child = container[segment];
    const fits = typeof next === 'number' ? Array.isArray(child) : isPlainObject(child);
    if (!fits) {
      child = typeof next === 'number' ? [] : {};
      container[segment] = child;
    }
    container = child as Record<PathSegment, unknown>;
  });
}

function valueAt(data: unknown, path: readonly PathSegment[]): unknown {
  let value = data;
  for (const segment of path) {
    if (!isPlainObject(value) && !Array.isArray(value)) return undefined;
    value = (value as Record<PathSegment, unknown>)[segment];
  }
  return value;
}

function startsWith(path: readonly PathSegment[], prefix: readonly PathSegment[]): boolean {
  return prefix.length <= path.length && prefix.every((segment, index) => String(segment) === String(path[index]));
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A likely intended key: same letters ignoring case and `_`/`-`, or at most two edits away. */
function closestKey(key: string, candidates: string[]): string | undefined {
  const fold = (text: string): string => text.replace(/[_-]/g, '').toLowerCase();
  const exact = candidates.find((candidate) => fold(candidate) === fold(key));
  if (exact) return exact;
  let best: string | undefined;
  let bestDistance = 3;
  for (const candidate of candidates) {
    const distance = editDistance(fold(key), fold(candidate));
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, index) => index);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length]!;
}

function errorCode(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : 'read failed';
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}
