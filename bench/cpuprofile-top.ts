/**
 * Reads a V8 CPU profile (`--cpu-prof`, see BENCH_CPU_PROF in bench/harness.ts) and prints where the
 * time went: the functions with the most self time, and the most total (inclusive) time, so a profile
 * can be quoted in docs/performance.md without opening DevTools.
 *
 * Usage: `node bench/cpuprofile-top.ts <file.cpuprofile> [--top 30] [--match text]`; `--match` keeps
 * only functions whose name or file contains the text in the inclusive list.
 */
import { readFile } from 'node:fs/promises';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const [file, ...rest] = process.argv.slice(2);
if (!file) throw new Error('usage: node bench/cpuprofile-top.ts <file.cpuprofile> [--top 30] [--match text]');
const option = (name: string) => {
  const index = rest.indexOf(`--${name}`);
  return index === -1 ? undefined : rest[index + 1];
};
const top = Number(option('top') ?? 30);
const match = option('match');

const profile = JSON.parse(await readFile(file, 'utf8')) as Profile;
const byId = new Map(profile.nodes.map((node) => [node.id, node]));
const parent = new Map<number, number>();
for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);

const selfMicros = new Map<number, number>();
for (const [index, id] of profile.samples.entries()) selfMicros.set(id, (selfMicros.get(id) ?? 0) + (profile.timeDeltas[index] ?? 0));
const totalMicros = [...selfMicros.values()].reduce((a, b) => a + b, 0);
const idle = new Set(['(idle)', '(program)', '(garbage collector)']);

const label = (node: ProfileNode) => {
  const url = node.callFrame.url.replace(/^file:\/\/.*?node_modules\//, '').replace(/^file:\/\/.*?\/(src|bench|test)\//, '$1/');
  return `${node.callFrame.functionName || '(anonymous)'} ${url}:${node.callFrame.lineNumber + 1}`;
};

const self = new Map<string, number>();
const inclusive = new Map<string, number>();
for (const [id, micros] of selfMicros) {
  const node = byId.get(id)!;
  self.set(label(node), (self.get(label(node)) ?? 0) + micros);
  // Each frame on the stack once, so recursion is not counted twice.
  const seen = new Set<string>();
  for (let current: number | undefined = id; current !== undefined; current = parent.get(current)) {
    const name = label(byId.get(current)!);
    if (seen.has(name)) continue;
    seen.add(name);
    inclusive.set(name, (inclusive.get(name) ?? 0) + micros);
  }
}

const busy = totalMicros - [...self].filter(([name]) => idle.has(name.split(' ')[0]!)).reduce((sum, [, micros]) => sum + micros, 0);
const print = (title: string, entries: Map<string, number>, filter: (name: string) => boolean) => {
  console.log(`\n${title}`);
  for (const [name, micros] of [...entries]
    .filter(([name]) => filter(name))
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)) {
    console.log(`${(micros / 1000).toFixed(0).padStart(8)} ms ${((100 * micros) / busy).toFixed(1).padStart(5)}%  ${name}`);
  }
};
console.log(`profile: ${(totalMicros / 1e6).toFixed(1)} s sampled, ${(busy / 1e6).toFixed(1)} s not idle`);
print('self time', self, () => true);
print('inclusive time', inclusive, (name) => !match || name.includes(match));
