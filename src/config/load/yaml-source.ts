/**
 * The configuration file as YAML: its data, its syntax problems, and the line of any key path (so a
 * problem found later, by the schema, still points at the line to fix).
 */
import { type Document, isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument } from 'yaml';
import { isPlainObject, type PathSegment } from './key-path.ts';
import type { LoadReport } from './load-report.ts';

/**
 * The document's top-level mapping as plain data, or undefined when the YAML cannot be used. Problems
 * go to `report`, which also learns where each key is.
 */
export function parseConfigYaml(text: string, report: LoadReport): Record<string, unknown> | undefined {
  const lines = new LineCounter();
  // prettyErrors off: the pretty form quotes the offending source line, which may hold a secret.
  // merge on: `<<: *defaults` is the usual way to share settings between servers.
  const doc = parseDocument(text, { prettyErrors: false, lineCounter: lines, uniqueKeys: true, merge: true });
  report.useLocator((path) => locate(doc, lines, path));
  let fatal = false;
  for (const error of [...doc.errors, ...doc.warnings]) {
    const { line, col } = lines.linePos(error.pos[0]);
    let message = error.message;
    if (error.code === 'DUPLICATE_KEY') {
      // The error marks only the key's first character; the key runs to its `:` (or closing quote).
      const key =
        /^("[^"\n]*"|'[^'\n]*'|[^:\n,{}]*)/
          .exec(text.slice(error.pos[0]))?.[1]
          ?.trim()
          .replace(/^(["'])(.*)\1$/, '$2') ?? '';
      message = `duplicate key${key && key.length <= 80 ? ` "${key}"` : ''}: each key may appear only once`;
    } else {
      fatal = true;
    }
    report.push({ path: '', message, line, column: col, source: report.file });
  }
  // A syntax error leaves the structure uncertain, and schema errors about a half-read file would
  // mislead; duplicate keys leave it intact, so those are reported together with everything else.
  if (fatal) return undefined;
  const contents = doc.contents;
  if (contents === null || (isScalar(contents) && (contents.value === null || contents.value === undefined))) return {};
  if (!isMap(contents)) {
    report.push({ path: '', message: 'the configuration must be a mapping of keys to values', ...locate(doc, lines, []), source: report.file });
    return undefined;
  }
  const data: unknown = doc.toJS({ maxAliasCount: 100 });
  return isPlainObject(data) ? data : {};
}

/**
 * The line of the key at `path`, or of its nearest existing parent (a missing key is reported at the
 * mapping that should hold it). The root itself has no useful line.
 */
function locate(doc: Document, lines: LineCounter, path: readonly PathSegment[]): { line?: number; column?: number } {
  let node: unknown = doc.contents;
  let offset: number | undefined;
  if (path.length === 0) {
    const range = (node as { range?: [number, number, number] } | null)?.range;
    return range ? { line: lines.linePos(range[0]).line } : {};
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
  return offset === undefined ? {} : { line: lines.linePos(offset).line };
}
