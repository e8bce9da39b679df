/**
 * Summarises a V8 CPU profile (`node --cpu-prof`, or BENCH_CPU_PROF=<dir> with the benchmarks): self
 * time by function and by file, and the total time spent under each of the repository's own source
 * files (inclusive), so the cost of one module on the hot path can be read as a share of the process.
 * Divide by the number of requests served during the profile for µs per request.
 *
 * Usage: node bench/profile-summary.ts <file.cpuprofile> [--top 30] [--requests N]
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

const file = process.argv[2];
if (!file) throw new Error('usage: node bench/profile-summary.ts <file.cpuprofile> [--top 30] [--requests N]');
const flag = (name: string): string | undefined => {
  const index = process.argv.indexOf(`--${name}`);
  return index === -1 ? undefined : process.argv[index + 1];
};
const top = Number(flag('top') ?? 30);
const requests = flag('requests') === undefined ? undefined : Number(flag('requests'));
const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;

const byId = new Map(profile.nodes.map((node) => [node.id, node]));
const parent = new Map<number, number>();
for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
const selfUs = new Map<number, number>();
for (let i = 0; i < profile.samples.length; i++) {
  const id = profile.samples[i]!;
  selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
}
/**
 * Start-up (module loading and TypeScript stripping, the top-level code of every module) is not what
 * a request costs: samples whose stack passes through the module loader are left out and reported.
 */
const startupFrame = (node: ProfileNode): boolean =>
  node.callFrame.url.startsWith('node:internal/modules/') ||
  node.callFrame.url.startsWith('node:internal/deps/amaro') ||
  node.callFrame.functionName === 'compileSourceTextModule';
let startupUs = 0;
for (const [id, us] of [...selfUs]) {
  for (let cursor: number | undefined = id; cursor !== undefined; cursor = parent.get(cursor)) {
    if (startupFrame(byId.get(cursor)!)) {
      startupUs += us;
      selfUs.delete(id);
      break;
    }
  }
}
const total = [...selfUs.values()].reduce((a, b) => a + b, 0);
const idle = [...selfUs].filter(([id]) => byId.get(id)!.callFrame.functionName === '(idle)').reduce((a, [, us]) => a + us, 0);
const busy = total - idle;

const shortUrl = (url: string): string => url.replace(/^file:\/\/.*?\/(src|bench|node_modules)\//, '$1/').replace(/^node:/, 'node:');
const label = (node: ProfileNode): string => `${node.callFrame.functionName || '(anonymous)'} ${shortUrl(node.callFrame.url)}:${node.callFrame.lineNumber + 1}`;

function add(map: Map<string, number>, key: string, us: number): void {
  map.set(key, (map.get(key) ?? 0) + us);
}

const selfByFunction = new Map<string, number>();
const selfByFile = new Map<string, number>();
const inclusiveByOwnFile = new Map<string, number>();
const inclusiveByOwnFunction = new Map<string, number>();
for (const [id, us] of selfUs) {
  const node = byId.get(id)!;
  if (node.callFrame.functionName === '(idle)') continue;
  add(selfByFunction, label(node), us);
  add(selfByFile, shortUrl(node.callFrame.url) || `(${node.callFrame.functionName})`, us);
  // Inclusive per repository file: each file counted once per sample, however deep it recurs.
  const seen = new Set<string>();
  for (let cursor: number | undefined = id; cursor !== undefined; cursor = parent.get(cursor)) {
    const url = shortUrl(byId.get(cursor)!.callFrame.url);
    if (url.startsWith('src/') && !seen.has(url)) {
      seen.add(url);
      add(inclusiveByOwnFile, url, us);
    }
    const name = label(byId.get(cursor)!);
    if (url.startsWith('src/') && !seen.has(name)) {
      seen.add(name);
      add(inclusiveByOwnFunction, name, us);
    }
  }
}

const fmt = (us: number): string => {
  const share = `${((100 * us) / busy).toFixed(1).padStart(5)} %`;
  return requests ? `${share} ${(us / requests).toFixed(2).padStart(7)} µs/req` : share;
};
const print = (title: string, map: Map<string, number>): void => {
  console.log(`\n${title}`);
  for (const [key, us] of [...map].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${fmt(us)}  ${key}`);
};
console.log(
  `${file}: ${(busy / 1000).toFixed(0)} ms busy of ${(total / 1000).toFixed(0)} ms sampled${requests ? `, ${requests} requests` : ''}; start-up left out: ${(startupUs / 1000).toFixed(0)} ms`,
);
print('self time by function', selfByFunction);
print('self time by file', selfByFile);
print("inclusive time under the repository's own files", inclusiveByOwnFile);
print("inclusive time under the repository's own functions", inclusiveByOwnFunction);
