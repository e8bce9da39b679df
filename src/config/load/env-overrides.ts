/**
 * Environment overrides: `MCP_GATEWAY_<PATH>` sets the key at PATH (nesting with `__`, list indexes as
 * numbers, camelCase as SCREAMING_SNAKE), and `MCP_GATEWAY_<PATH>_FILE` reads the value from a file
 * (Docker and Kubernetes secrets). Variables are matched against the schema, so an unknown one is a
 * problem (a typo would otherwise be ignored), and each value is coerced to the type its key expects.
 */
import { readFile } from 'node:fs/promises';
import { readFailure, splitLines } from './file-text.ts';
import { formatPath, isPlainObject, type PathSegment, setIn } from './key-path.ts';
import type { LoadReport } from './load-report.ts';
import { childSchema, configJsonSchema, deref, type JsonSchema, kindOf, pickVariant, schemaAt, unionVariants } from './schema-walker.ts';

export const ENV_PREFIX = 'MCP_GATEWAY_';
/** Names the file to load; it is not a configuration key, so it is exempt from the unknown-variable check. */
export const CONFIG_PATH_ENV = 'MCP_GATEWAY_CONFIG';
const RESERVED_ENV = new Set([CONFIG_PATH_ENV]);

interface EnvOverride {
  name: string;
  path: PathSegment[];
  fromFile: boolean;
  raw: string;
}

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

/** `MCP_GATEWAY_LISTEN__PORT=9000`, `MCP_GATEWAY_SECRETS__ENCRYPTION_KEYS_FILE=/run/secrets/keys`, ... */
export async function applyEnvironment(data: Record<string, unknown>, env: Record<string, string | undefined>, report: LoadReport): Promise<void> {
  const overrides: EnvOverride[] = [];
  const direct = new Map<string, string>();
  for (const [name, raw] of Object.entries(env).sort(([a], [b]) => (a < b ? -1 : 1))) {
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
      report.push({ path: '', message: 'unknown environment variable: it matches no configuration key', source: name });
      continue;
    }
    const key = formatPath(path);
    const other = direct.get(key);
    if (other !== undefined) {
      report.push({ path: key, message: `set by both ${other} and ${name}; use only one`, source: name });
      continue;
    }
    direct.set(key, name);
    overrides.push({ name, path, fromFile, raw });
  }
  // Whole objects first, then the keys inside them, so `SERVERS__0__PATH` refines `SERVERS`.
  overrides.sort((a, b) => a.path.length - b.path.length);
  for (const override of overrides) await applyOverride(data, override, report);
}

async function applyOverride(data: Record<string, unknown>, override: EnvOverride, report: LoadReport): Promise<void> {
  const { name, path } = override;
  let text = override.raw;
  if (override.fromFile) {
    try {
      text = (await readFile(override.raw, 'utf8')).trim();
    } catch (error) {
      report.envProblem(path, name, `cannot read file "${override.raw}" (${readFailure(error)})`);
      return;
    }
    // `_FILE` exists for secrets; whatever it held must not be echoed back.
    report.rememberSecret(text);
    for (const line of splitLines(text)) report.rememberSecret(line);
  }
  const node = schemaAt(path, data);
  const coerced = coerce(text, node, override.fromFile ? 'lines' : 'commas');
  if ('error' in coerced) {
    report.envProblem(path, name, coerced.error);
    return;
  }
  setIn(data, path, coerced.value);
  report.setFromEnv(path, name);
}

// ---------------------------------------------------------------------------------------------------
// Coercion: an environment (or `_FILE`) string as the type its key expects.

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
      const items =
        listStyle === 'lines'
          ? splitLines(trimmed)
          : trimmed
              .split(',')
              .map((item) => item.trim())
              .filter((item) => item !== '');
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
