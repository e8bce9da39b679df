/**
 * `${file:/path}` and `${env:NAME}` values in the YAML: the way to keep secrets out of the file while
 * still naming them there. A reference must be the whole value (no string interpolation: it would
 * make a secret part of a longer value that could be logged).
 */
import { readFile } from 'node:fs/promises';
import { resolve as resolvePath } from 'node:path';
import { readFailure, splitLines } from './file-text.ts';
import { isPlainObject, type PathSegment } from './key-path.ts';
import type { LoadReport } from './load-report.ts';
import { kindOf, schemaAt } from './schema-walker.ts';

const REFERENCE = /^\$\{(file|env):([^}]*)\}$/;

/**
 * Replaces reference values in `root`, in place. Relative file paths are relative to the configuration
 * file (`baseDir`), so a config and its secrets directory can move together.
 */
export async function resolveReferences(
  root: Record<string, unknown>,
  baseDir: string,
  env: Record<string, string | undefined>,
  report: LoadReport,
): Promise<void> {
  await resolveIn(root, root, [], { baseDir, env, report });
}

interface Context {
  baseDir: string;
  env: Record<string, string | undefined>;
  report: LoadReport;
}

async function resolveIn(root: Record<string, unknown>, value: unknown, path: PathSegment[], context: Context): Promise<void> {
  if (!isPlainObject(value) && !Array.isArray(value)) return;
  const { report } = context;
  const entries: [PathSegment, unknown][] = Array.isArray(value) ? value.map((item, index) => [index, item]) : Object.entries(value);
  for (const [key, item] of entries) {
    const itemPath = [...path, key];
    if (typeof item !== 'string') {
      await resolveIn(root, item, itemPath, context);
      continue;
    }
    const match = REFERENCE.exec(item);
    if (!match) {
      if (/\$\{(file|env):/.test(item)) {
        report.fileProblem(itemPath, '${file:...} and ${env:...} must be the whole value, not part of it');
      }
      continue;
    }
    const [, kind, target = ''] = match;
    let resolved: unknown;
    if (kind === 'env') {
      const envValue = context.env[target];
      if (envValue === undefined || target === '') {
        report.fileProblem(itemPath, `environment variable "${target}" is not set`);
        continue;
      }
      resolved = envValue;
    } else {
      let content: string;
      try {
        content = (await readFile(resolvePath(context.baseDir, target), 'utf8')).trim();
      } catch (error) {
        report.fileProblem(itemPath, `cannot read file "${target}" (${readFailure(error)})`);
        continue;
      }
      // Files referenced from the config are where secrets live; keep their contents out of messages.
      report.rememberSecret(content);
      // A list key (encryptionKeys) takes one item per line, as the `_FILE` variables do.
      resolved = kindOf(schemaAt(itemPath, root)) === 'array' ? splitLines(content) : content;
      if (Array.isArray(resolved)) for (const line of resolved) report.rememberSecret(line);
    }
    (value as Record<PathSegment, unknown>)[key] = resolved;
  }
}
