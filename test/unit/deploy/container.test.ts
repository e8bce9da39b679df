/**
 * The container files agree with each other and with the gateway: Dockerfile, .dockerignore, the
 * configuration baked into the image (deploy/image/gateway.yaml), compose.yaml and the configuration it
 * mounts (deploy/compose/gateway.yaml). No container engine is needed: the files are parsed, and each
 * configuration goes through `mcp-oauth-gateway config check` (the CLI, in a child process) with the
 * environment and secret files the image or compose would give it. Building and running the image is
 * deploy/test-image.sh (test/e2e/container-image.test.ts, opt-in).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { configJsonSchema } from '../../../src/config/load/schema-walker.ts';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const MAIN = join(ROOT, 'src/cli/main.ts');
const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');

// ---------------------------------------------------------------------------------------------------
// Dockerfile: instructions with their continuation lines joined, comments dropped.

interface Instruction {
  stage: string;
  keyword: string;
  args: string;
}

function dockerfile(): Instruction[] {
  const instructions: Instruction[] = [];
  let stage = '';
  let pending = '';
  for (const raw of read('Dockerfile').split('\n')) {
    const line = raw.trim();
    if (line.startsWith('#') && pending === '') continue;
    if (line === '' && pending === '') continue;
    pending += `${line.replace(/\\$/, '')} `;
    if (line.endsWith('\\')) continue;
    const [keyword, ...rest] = pending.trim().split(/\s+/);
    const args = rest.join(' ');
    if (keyword!.toUpperCase() === 'FROM') stage = /\bAS\s+(\S+)/i.exec(args)?.[1] ?? '';
    instructions.push({ stage, keyword: keyword!.toUpperCase(), args });
    pending = '';
  }
  return instructions;
}

function only(instructions: Instruction[], keyword: string, stage?: string): Instruction[] {
  return instructions.filter((i) => i.keyword === keyword && (stage === undefined || i.stage === stage));
}

/** `ENV A=1 B=2` (with quotes or not) as a map, over every ENV of the stage. */
function envOf(instructions: Instruction[], stage: string): Map<string, string> {
  const env = new Map<string, string>();
  for (const { args } of only(instructions, 'ENV', stage)) {
    for (const match of args.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=("[^"]*"|\S+)/g)) env.set(match[1]!, match[2]!.replace(/^"|"$/g, ''));
  }
  return env;
}

/**
 * Whether .dockerignore lets `path` into the build context: the last pattern that matches the path or
 * one of its parent directories decides (`!` re-includes), as Docker applies them. Covers the `*` and
 * `name/` patterns the file uses.
 */
function inBuildContext(path: string): boolean {
  const rules = read('.dockerignore')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
  const segments = path.replace(/\/$/, '').split('/');
  const prefixes = segments.map((_, index) => segments.slice(0, index + 1).join('/'));
  let included = true;
  for (const rule of rules) {
    const negated = rule.startsWith('!');
    const pattern = rule.replace(/^!/, '').replace(/\/$/, '');
    const regex = new RegExp(`^${pattern.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*')}$`);
    if (prefixes.some((prefix) => regex.test(prefix))) included = negated;
  }
  return included;
}

// ---------------------------------------------------------------------------------------------------
// `config check` in a child process, as `docker run … config check` runs it.

interface CheckResult {
  code: number | null;
  output: string;
}

function configCheck(configPath: string, env: Record<string, string>): Promise<CheckResult> {
  // Only the variables given: none of the developer's MCP_GATEWAY_* may leak into the check.
  const childEnv: Record<string, string> = { PATH: process.env.PATH ?? '', ...env };
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MAIN, 'config', 'check', '--config', configPath], { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, output }));
  });
}

/** `${NAME:-default}` and `${NAME}` in a compose value, with an empty environment: the defaults. */
function composeDefaults(value: string): string {
  return value.replace(/\$\{[A-Z0-9_]+(?::?-([^}]*))?\}/g, (_, fallback: string | undefined) => fallback ?? '');
}

// ---------------------------------------------------------------------------------------------------

describe('Dockerfile and .dockerignore', () => {
  const instructions = dockerfile();

  test('the base is a build argument defaulting to a tag-pinned Node 24 slim image, used by both stages', () => {
    const arg = only(instructions, 'ARG').find((i) => i.args.startsWith('BASE='));
    assert.equal(arg?.args, 'BASE=node:24-bookworm-slim');
    const froms = only(instructions, 'FROM').map((i) => i.args);
    // biome-ignore lint/suspicious/noTemplateCurlyInString: the Dockerfile's own ${BASE}, not a template
    assert.deepEqual(froms, ['${BASE} AS build', '${BASE} AS runtime']);
  });

  test('the build stage packs the npm tarball; the runtime stage installs it without dev dependencies', () => {
    const build = only(instructions, 'RUN', 'build').map((i) => i.args);
    assert.ok(
      build.some((run) => /\bnpm ci\b/.test(run)),
      'npm ci in the build stage',
    );
    assert.ok(
      build.some((run) => /\bnpm pack\b/.test(run)),
      'npm pack in the build stage',
    );
    const runtime = only(instructions, 'RUN', 'runtime').map((i) => i.args);
    const install = runtime.find((run) => /\bnpm install\b/.test(run));
    assert.ok(install, 'npm install in the runtime stage');
    assert.match(install, /--omit=dev/);
    const copies = only(instructions, 'COPY', 'runtime').map((i) => i.args);
    const tarball = copies.find((args) => args.startsWith('--from=build '));
    assert.ok(tarball && install.includes(tarball.split(/\s+/).at(-1)!), 'the tarball installed is the one the build stage packed');
    // Not a `RUN --mount` of the build stage: Buildah reuses such a RUN from its cache when its text is
    // unchanged, and the image would then hold the package of an earlier build.
    assert.ok(!only(instructions, 'RUN', 'runtime').some((i) => i.args.includes('from=build')), 'no RUN mounts the build stage');
    assert.deepEqual(
      copies.filter((args) => !args.startsWith('--from=build ') && !args.startsWith('deploy/image/')),
      [],
      'nothing of the repository but deploy/image/',
    );
  });

  test('every file npm pack needs is copied into the build stage', () => {
    const manifest = JSON.parse(read('package.json')) as { files: string[]; scripts: Record<string, string> };
    const copied = only(instructions, 'COPY', 'build').flatMap((i) => i.args.split(/\s+/).slice(0, -1));
    for (const needed of ['package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json', 'src']) {
      assert.ok(copied.includes(needed), `${needed} is copied (npm ci and prepack need it)`);
    }
    // `files` lists what the tarball holds: dist/ is built in the stage, everything else is copied.
    for (const entry of manifest.files.filter((file) => file !== 'dist')) assert.ok(copied.includes(entry), `${entry} (package.json files) is copied`);
    assert.match(manifest.scripts.prepack ?? '', /build/, 'npm pack builds dist/ through prepack');
  });

  test('.dockerignore admits every COPY source and keeps local state out', () => {
    const sources = only(instructions, 'COPY')
      .filter((i) => !i.args.startsWith('--from'))
      .flatMap((i) => i.args.split(/\s+/).slice(0, -1));
    assert.ok(sources.length >= 7, `COPY sources found: ${sources.join(', ')}`);
    for (const source of sources) assert.ok(inBuildContext(source), `${source} is in the build context`);
    for (const excluded of [
      'node_modules',
      'data/gateway.db',
      'dist',
      '.git',
      'deploy/compose/secrets/encryption-key',
      'test',
      'mcp-oauth-gateway-0.1.0.tgz',
    ]) {
      assert.ok(!inBuildContext(excluded), `${excluded} stays out of the build context`);
    }
  });

  test('non-root user, /data volume, port 8080, HEALTHCHECK on /healthz, the CLI as entrypoint', () => {
    assert.deepEqual(
      only(instructions, 'USER', 'runtime').map((i) => i.args),
      ['10001:10001'],
    );
    assert.deepEqual(
      only(instructions, 'VOLUME', 'runtime').map((i) => i.args),
      ['["/data"]'],
    );
    assert.deepEqual(
      only(instructions, 'EXPOSE', 'runtime').map((i) => i.args),
      ['8080'],
    );
    const [healthcheck] = only(instructions, 'HEALTHCHECK', 'runtime');
    assert.match(healthcheck?.args ?? '', /CMD \["node", "\/opt\/mcp-oauth-gateway\/healthcheck\.mjs"\]/);
    assert.match(read('deploy/image/healthcheck.mjs'), /\/healthz/);
    assert.deepEqual(
      only(instructions, 'ENTRYPOINT').map((i) => i.args),
      ['["mcp-oauth-gateway"]'],
    );
    assert.deepEqual(
      only(instructions, 'CMD').map((i) => i.args),
      ['["serve"]'],
    );
    assert.match(
      only(instructions, 'RUN', 'runtime')
        .map((i) => i.args)
        .join('\n'),
      /useradd --uid 10001 /,
    );
  });
});

describe('the configuration baked into the image', () => {
  const instructions = dockerfile();
  const baked = parse(read('deploy/image/gateway.yaml')) as { listen: { host: string; port: number }; dataDir: string };

  test('is the file MCP_GATEWAY_CONFIG names, listens on every interface on the exposed port, keeps state in the volume', () => {
    const env = envOf(instructions, 'runtime');
    const copy = only(instructions, 'COPY', 'runtime').find((i) => i.args.startsWith('deploy/image/gateway.yaml'));
    assert.equal(copy?.args.split(/\s+/)[1], env.get('MCP_GATEWAY_CONFIG'));
    assert.equal(baked.listen.host, '0.0.0.0');
    assert.equal(String(baked.listen.port), only(instructions, 'EXPOSE')[0]?.args);
    assert.equal(baked.dataDir, '/data');
  });

  test('passes `config check` as the image runs it', async () => {
    const result = await configCheck(join(ROOT, 'deploy/image/gateway.yaml'), {});
    assert.equal(result.code, 0, result.output);
    assert.match(result.output, /config ok: 0 servers, 0 identity providers, issuer http:\/\/localhost:8080/);
  });
});

interface ComposeService {
  image?: string;
  build?: unknown;
  command?: string[];
  entrypoint?: string[];
  environment?: Record<string, string>;
  secrets?: string[];
  volumes?: string[];
  ports?: string[];
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[] };
  user?: string;
  init?: boolean;
  read_only?: boolean;
}

describe('compose.yaml', () => {
  const compose = parse(read('compose.yaml')) as {
    services: Record<string, ComposeService>;
    secrets: Record<string, { file: string }>;
    volumes: Record<string, unknown>;
  };
  const { redis, gateway, demo } = compose.services;
  const gatewayConfig = parse(read('deploy/compose/gateway.yaml')) as {
    listen: { host: string; port: number };
    dataDir: string;
    storage: { type: string; url: string; allowPlaintext?: boolean };
    servers: { path: string; upstream: { url: string } }[];
  };
  let work: string;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'mcpgw-compose-'));
  });
  after(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  test('runs redis, the demo MCP server and the gateway from the image this Dockerfile builds', () => {
    assert.deepEqual(Object.keys(compose.services).sort(), ['demo', 'gateway', 'redis']);
    assert.equal(gateway?.build, '.');
    assert.equal(demo?.image, gateway?.image, 'the demo server runs from the gateway image');
    assert.equal(gateway?.init, true, 'an init reaps stdio servers’ children');
    assert.equal(gateway?.read_only, true);
  });

  test('redis persists every write, never evicts, wants a password from a secret, and reports its health', () => {
    const command = (redis?.command ?? []).join(' ');
    assert.match(command, /--appendonly yes/);
    assert.match(command, /--maxmemory-policy noeviction/);
    assert.match(command, /requirepass/);
    assert.match(command, /\/run\/secrets\/redis-password/);
    assert.ok(redis?.secrets?.includes('redis-password'));
    assert.notEqual(redis?.user, undefined, 'redis does not run as root');
    assert.match((redis?.healthcheck?.test ?? []).join(' '), /redis-cli ping/);
    assert.ok(redis?.volumes?.some((volume) => volume.endsWith(':/data')));
  });

  test('the demo server listens where the gateway config sends MCP traffic, and has a health check', () => {
    const upstream = new URL(gatewayConfig.servers[0]!.upstream.url);
    const args = demo?.command ?? [];
    assert.equal(upstream.hostname, 'demo');
    assert.equal(args[args.indexOf('--port') + 1], upstream.port);
    assert.equal(args[args.indexOf('--host') + 1], '0.0.0.0');
    assert.equal(upstream.pathname, '/mcp');
    assert.match((demo?.entrypoint ?? []).join(' '), /^node \/opt\/mcp-oauth-gateway\/node_modules\/mcp-oauth-gateway\/dist\/demo\/server\.js$/);
    assert.ok(existsSync(join(ROOT, 'src/demo/server.ts')), 'dist/demo/server.js is built from src/demo/server.ts');
    assert.match(read('src/demo/server.ts'), /if \(import\.meta\.main\)/, 'the demo server runs standalone');
    assert.ok(demo?.healthcheck?.test.join(' ').includes(`127.0.0.1:${upstream.port}/mcp`));
  });

  test('the gateway waits for healthy redis and demo, mounts its config where the image reads it, publishes its port', () => {
    assert.deepEqual(gateway?.depends_on, { redis: { condition: 'service_healthy' }, demo: { condition: 'service_healthy' } });
    assert.ok(gateway?.volumes?.includes('./deploy/compose/gateway.yaml:/etc/mcp-oauth-gateway/gateway.yaml:ro'));
    assert.ok(gateway?.volumes?.some((volume) => volume.endsWith(':/data')));
    assert.deepEqual(gateway?.ports, [`127.0.0.1:8080:${gatewayConfig.listen.port}`]);
    assert.equal(gatewayConfig.listen.host, '0.0.0.0');
    assert.equal(gatewayConfig.dataDir, '/data');
    assert.equal(gatewayConfig.storage.type, 'redis');
    assert.equal(new URL(gatewayConfig.storage.url).hostname, 'redis');
    assert.equal(gateway?.healthcheck, undefined, 'the image’s HEALTHCHECK applies');
  });

  test('every secret a service uses is declared, comes from a git-ignored file, and reaches the gateway as a _FILE variable', () => {
    for (const service of Object.values(compose.services)) {
      for (const secret of service.secrets ?? []) assert.ok(compose.secrets[secret], `secret ${secret} is declared`);
    }
    for (const { file } of Object.values(compose.secrets)) assert.match(file, /^\.\/deploy\/compose\/secrets\/[^/]+$/);
    assert.match(read('deploy/compose/secrets/.gitignore'), /^\*$/m);
    const fileVariables = Object.entries(gateway?.environment ?? {}).filter(([name]) => name.endsWith('_FILE'));
    assert.deepEqual(fileVariables.map(([, value]) => value).sort(), (gateway?.secrets ?? []).map((secret) => `/run/secrets/${secret}`).sort());
    for (const [name, value] of Object.entries(gateway?.environment ?? {})) {
      if (!name.endsWith('_FILE')) assert.doesNotMatch(name, /PASSWORD|SECRET|KEY/, `${name}=${value} would show a secret in docker inspect`);
    }
  });

  test('the gateway configuration passes `config check` with the environment and secrets compose gives it', async (t) => {
    // Redis storage comes with the Redis backend; until this build has it, nothing here can check the file.
    if (!JSON.stringify(configJsonSchema()).includes('"redis"')) return t.skip('this build has no Redis storage backend (storage.type redis)');
    const env: Record<string, string> = {};
    for (const [name, value] of Object.entries(gateway?.environment ?? {})) {
      const secret = /^\/run\/secrets\/(.+)$/.exec(value)?.[1];
      if (!secret) {
        env[name] = composeDefaults(value);
        continue;
      }
      // The secret file as docs/container.md tells the operator to make it.
      const path = join(work, secret);
      await writeFile(path, secret === 'encryption-key' ? `${Buffer.alloc(32, 7).toString('base64')}\n` : 'a-redis-password\n');
      env[name] = path;
    }
    const result = await configCheck(join(ROOT, 'deploy/compose/gateway.yaml'), env);
    assert.equal(result.code, 0, result.output);
    assert.match(result.output, /config ok: 1 server, 0 identity providers, issuer http:\/\/localhost:8080/);

    // The check is no formality: without the encryption key compose passes, Redis storage is refused.
    const withoutKey = await configCheck(join(ROOT, 'deploy/compose/gateway.yaml'), { ...env, MCP_GATEWAY_SECRETS__ENCRYPTION_KEYS_FILE: '' });
    assert.equal(withoutKey.code, 1, withoutKey.output);
    assert.match(withoutKey.output, /secrets\.encryptionKeys/);
  });
});
