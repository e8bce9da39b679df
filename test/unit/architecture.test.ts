/**
 * The rooms of src/ and the direction of their imports, as ARCHITECTURE.md describes them: a room may
 * import only rooms below it in this list. A change that makes a low room reach back up (storage
 * importing the resource server, policy importing an identity provider) fails here, with the file and
 * the import, instead of surfacing later as a tangle nobody chose.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { test } from 'node:test';

/** Ground floor first; the same order as the table in ARCHITECTURE.md. */
const ROOMS = [
  'core',
  'observability',
  'ui',
  'http',
  'policy',
  'config',
  'storage',
  'idp',
  'authorization',
  'stdio',
  'demo',
  'proxy',
  'resource-server',
  'forward-auth',
  'app.ts',
  'cli',
] as const;

const SRC = resolve(import.meta.dirname, '../../src');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith('.ts') ? [path] : [];
  });
}

/** The room of a file under src/: its first path segment. */
function roomOf(file: string): string {
  return relative(SRC, file).split('/')[0] as string;
}

/** Relative specifiers of static imports, re-exports and dynamic imports. */
function relativeImports(source: string): string[] {
  const specifiers: string[] = [];
  for (const match of source.matchAll(/(?:from\s+|import\s*\(\s*)['"](\.{1,2}\/[^'"]+)['"]/g)) specifiers.push(match[1] as string);
  return specifiers;
}

test('every file under src/ belongs to a room ARCHITECTURE.md lists', () => {
  const unknown = sourceFiles(SRC)
    .map(roomOf)
    .filter((room) => !(ROOMS as readonly string[]).includes(room));
  assert.deepEqual([...new Set(unknown)], []);
});

test('no room imports a room above it', () => {
  const upward: string[] = [];
  for (const file of sourceFiles(SRC)) {
    const from = roomOf(file);
    for (const specifier of relativeImports(readFileSync(file, 'utf8'))) {
      const to = roomOf(resolve(dirname(file), specifier));
      if (to === from) continue;
      if (ROOMS.indexOf(to as (typeof ROOMS)[number]) > ROOMS.indexOf(from as (typeof ROOMS)[number])) {
        upward.push(`${relative(SRC, file)} imports ${specifier} (${from} -> ${to})`);
      }
    }
  }
  assert.deepEqual(upward, []);
});

test('the room order here is the order of ARCHITECTURE.md', () => {
  const doc = readFileSync(resolve(SRC, '../ARCHITECTURE.md'), 'utf8');
  const listed = [...doc.matchAll(/^\| `([a-z.-]+)\/?` \|/gm)].map((match) => match[1]);
  assert.deepEqual(listed, [...ROOMS]);
});
