/**
 * The package as a user gets it: `npm pack` (prepack builds dist/), `npm install <tarball>` into an
 * empty project, then the installed `mcp-oauth-gateway` bin runs `config check` and `serve`.
 *
 * Every other test runs the TypeScript sources. Node refuses to strip types under node_modules, so
 * only this test proves that the built JavaScript, the bin's shebang, the `files` list and the
 * runtime dependencies work together (the demo MCP server, imported on demand, included).
 *
 * The installed bin runs on the Node that runs this test (its directory goes first on PATH, which
 * the bin's `#!/usr/bin/env node` then finds). PACKAGE_TEST_NODE=/path/to/bin/node picks another
 * binary named `node`, for example the oldest release `engines` allows.
 *
 * The install needs the npm registry: when npm cannot reach it (`npm ping` first, so an offline
 * machine does not wait out npm's retries), the tests skip with npm's error as the reason.
 */

import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { isBuiltin } from 'node:module';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { freePort, waitForUrl } from '../support/ports.ts';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const NODE_FOR_BIN = process.env.PACKAGE_TEST_NODE ?? process.execPath;
/** npm's messages when it cannot reach the registry (DNS, refused, reset, timeout, offline cache miss). */
const REGISTRY_UNREACHABLE = /\b(ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENETUNREACH|EHOSTUNREACH|ENOTCACHED)\b/;

interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * The environment for child npm and gateway processes. Without the lower-case npm_* variables an
 * enclosing `npm test` exports (npm_config_local_prefix would point the inner npm at this repository,
 * npm_config_call and the like describe the outer command); the inner npm reads .npmrc again, and
 * NPM_CONFIG_* set by the user or CI (a registry mirror, a cache) stay. Without MCP_GATEWAY_*
 * overrides, so only the files written here configure the gateway.
 */
function childEnv(extraPath?: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (key.startsWith('npm_') || key.startsWith('MCP_GATEWAY_')) continue;
    env[key] = value;
  }
  if (extraPath) env.PATH = `${extraPath}${delimiter}${process.env.PATH ?? ''}`;
  return env;
}

function run(command: string, args: string[], options: { cwd: string; env: NodeJS.ProcessEnv; timeoutMs: number }): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: options.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: options.timeoutMs,
      killSignal: 'SIGKILL',
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

/** The line that names npm's error (`npm error code ECONNREFUSED`), else the last line it wrote. */
function npmError(result: RunResult): string {
  const lines = `${result.stdout}\n${result.stderr}`
    .split('\n')
    .map((line) => line.trim())
    .filter(Boolean);
  const code = lines.find((line) => /^npm (error|ERR!) code /.test(line));
  return code ?? lines.at(-1) ?? (result.signal ? `no answer, killed by ${result.signal}` : `exit ${result.code}`);
}

/** Resolves with the exit of `child`, or rejects once `ms` have passed without one. */
function exitWithin(child: ChildProcess, ms: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`process ${child.pid} still running ${ms} ms after SIGTERM`)), ms);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal });
    });
  });
}

describe('the npm package, packed, installed and run', () => {
  let work: string;
  let project: string;
  let bin: string;
  let skipReason: string | undefined;
  let server: ChildProcess | undefined;

  before(
    async () => {
      work = await mkdtemp(join(tmpdir(), 'mcpgw-package-'));
      const packDir = join(work, 'pack');
      project = join(work, 'project');
      await mkdir(packDir);
      await mkdir(project);

      // npm retries an unreachable registry for minutes: ask it once, briefly, before anything else.
      await writeFile(join(project, 'package.json'), `${JSON.stringify({ name: 'package-test-consumer', version: '1.0.0', private: true })}\n`);
      const ping = await run('npm', ['ping', '--fetch-retries=0', '--fetch-timeout=15000'], { cwd: project, env: childEnv(), timeoutMs: 30_000 });
      if (ping.code !== 0) {
        skipReason = `npm cannot reach the registry (npm ping: ${npmError(ping)}): the package was not installed`;
        return;
      }

      const started = Date.now();
      const pack = await run('npm', ['pack', '--pack-destination', packDir], { cwd: REPO_ROOT, env: childEnv(), timeoutMs: 120_000 });
      assert.equal(pack.code, 0, `npm pack failed:\n${pack.stdout}\n${pack.stderr}`);
      const tarballs = (await readdir(packDir)).filter((name) => name.endsWith('.tgz'));
      assert.equal(tarballs.length, 1, `one tarball expected, got ${tarballs.join(', ')}`);
      const packed = Date.now();

      const install = await run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', join(packDir, tarballs[0]!)], {
        cwd: project,
        env: childEnv(),
        timeoutMs: 240_000,
      });
      if (install.code !== 0) {
        const output = `${install.stdout}\n${install.stderr}`;
        const unreachable = REGISTRY_UNREACHABLE.exec(output);
        if (unreachable) {
          skipReason = `npm cannot reach the registry (${unreachable[1]}): the packed tarball was not installed`;
          return;
        }
        assert.fail(`npm install of the tarball failed (${install.signal ? `killed after 240 s` : `exit ${install.code}`}):\n${output}`);
      }
      bin = join(project, 'node_modules', '.bin', 'mcp-oauth-gateway');
      const installed = Date.now();
      const node = await run('node', ['--version'], { cwd: project, env: childEnv(dirname(NODE_FOR_BIN)), timeoutMs: 10_000 });
      process.stdout.write(`# npm pack ${packed - started} ms, npm install ${installed - packed} ms; the bin runs on Node ${node.stdout.trim()}\n`);
    },
    { timeout: 400_000 },
  );

  after(async () => {
    if (server && server.exitCode === null && server.signalCode === null) {
      server.kill('SIGKILL');
      await once(server, 'exit');
    }
    if (work) await rm(work, { recursive: true, force: true });
  });

  const gateway = (args: string[]) => run(bin, args, { cwd: project, env: childEnv(dirname(NODE_FOR_BIN)), timeoutMs: 60_000 });

  test('the package holds the built JavaScript for every source file, and no Node binary comes with it', async (t) => {
    if (skipReason) return t.skip(skipReason);
    const installed = join(project, 'node_modules', 'mcp-oauth-gateway');
    const manifest = JSON.parse(await readFile(join(installed, 'package.json'), 'utf8')) as { bin: Record<string, string> };
    const main = await readFile(join(installed, manifest.bin['mcp-oauth-gateway']!), 'utf8');
    assert.match(main.split('\n')[0]!, /^#!\/usr\/bin\/env node$/, 'the bin starts with a node shebang');

    // Each src file must reach the package: a .ts as the .js the build emits, anything else (an asset
    // read at run time) as itself. A file missing here is missing for every user of the package.
    const missing: string[] = [];
    for (const entry of await readdir(join(REPO_ROOT, 'src'), { recursive: true, withFileTypes: true })) {
      if (!entry.isFile()) continue;
      const relative = join(entry.parentPath, entry.name).slice(join(REPO_ROOT, 'src').length + 1);
      const expected = relative.endsWith('.d.ts') ? undefined : relative.replace(/\.ts$/, '.js');
      if (expected && !existsSync(join(installed, 'dist', expected))) missing.push(`src/${relative} -> dist/${expected}`);
    }
    assert.deepEqual(missing, [], 'every file under src is in the package');

    // A package the built code imports must be a runtime dependency: a devDependency is present in a
    // clone, so only an install from the tarball shows it missing (for lazily imported modules, only
    // when a user reaches them).
    const manifestDependencies = JSON.parse(await readFile(join(REPO_ROOT, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> };
    const undeclared = new Set<string>();
    for (const entry of await readdir(join(installed, 'dist'), { recursive: true, withFileTypes: true })) {
      if (!entry.isFile() || !entry.name.endsWith('.js')) continue;
      const code = await readFile(join(entry.parentPath, entry.name), 'utf8');
      for (const match of code.matchAll(
        /^\s*(?:import|export)\b[^'"]*?from\s*['"]([^'"]+)['"]|^\s*import\s*['"]([^'"]+)['"]|\bimport\(\s*['"]([^'"]+)['"]\s*\)/gm,
      )) {
        const specifier = match[1] ?? match[2] ?? match[3]!;
        if (specifier.startsWith('.') || isBuiltin(specifier)) continue;
        const name = specifier
          .split('/')
          .slice(0, specifier.startsWith('@') ? 2 : 1)
          .join('/');
        if (!manifestDependencies.dependencies?.[name])
          undeclared.add(`${name} (dist/${join(entry.parentPath, entry.name).slice(join(installed, 'dist').length + 1)})`);
      }
    }
    assert.deepEqual([...undeclared], [], 'packages imported at run time are listed in dependencies');
    assert.ok(!existsSync(join(installed, 'src')), 'the TypeScript sources are not shipped');
    assert.ok(!existsSync(join(installed, 'test')), 'the tests are not shipped');
    assert.ok(!existsSync(join(project, 'node_modules', 'node')), 'the pinned Node for development is not a runtime dependency');
  });

  test('`config check` accepts a valid file and names the key path of every problem in a bad one', async (t) => {
    if (skipReason) return t.skip(skipReason);
    const good = join(work, 'good.yaml');
    await writeFile(
      good,
      ['publicUrl: http://127.0.0.1:18080', 'listen:', '  host: 127.0.0.1', '  port: 18080', `dataDir: ${join(work, 'unused-data')}`, ''].join('\n'),
    );
    // Through npx, as the README tells users to run it.
    const ok = await run('npx', ['--no-install', 'mcp-oauth-gateway', 'config', 'check', '--config', good], {
      cwd: project,
      env: childEnv(dirname(NODE_FOR_BIN)),
      timeoutMs: 60_000,
    });
    assert.equal(ok.code, 0, `config check of a valid file:\n${ok.stdout}\n${ok.stderr}`);
    assert.match(ok.stdout, /config ok: .*issuer http:\/\/127\.0\.0\.1:18080/);
    assert.ok(!existsSync(join(work, 'unused-data')), 'config check creates nothing');

    const bad = join(work, 'bad.yaml');
    await writeFile(bad, ['publicUrl: http://127.0.0.1:18080', 'listen:', '  port: not-a-port', 'log:', '  level: loud', ''].join('\n'));
    const failed = await gateway(['config', 'check', '--config', bad]);
    assert.notEqual(failed.code, 0, 'a bad file fails the check');
    const output = `${failed.stdout}${failed.stderr}`;
    assert.match(output, /listen\.port \(line 3\)/, output);
    assert.match(output, /log\.level \(line 5\)/, output);
  });

  test('`serve` answers health and discovery, then stops on SIGTERM', async (t) => {
    if (skipReason) return t.skip(skipReason);
    const port = await freePort();
    const publicUrl = `http://127.0.0.1:${port}`;
    const config = join(work, 'serve.yaml');
    await writeFile(
      config,
      [`publicUrl: ${publicUrl}`, 'listen:', '  host: 127.0.0.1', `  port: ${port}`, `dataDir: ${join(work, 'data')}`, 'log:', '  level: warn', ''].join('\n'),
    );

    const child = spawn(bin, ['serve', '--config', config], { cwd: project, env: childEnv(dirname(NODE_FOR_BIN)), stdio: ['ignore', 'pipe', 'pipe'] });
    server = child;
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    const exitedEarly = once(child, 'exit').then(([code, signal]) => {
      throw new Error(`serve exited before answering (code ${code}, signal ${signal}):\n${output}`);
    });
    exitedEarly.catch(() => {});

    const health = await Promise.race([waitForUrl(`${publicUrl}/healthz`, { timeoutMs: 30_000, ok: (status) => status === 200 }), exitedEarly]);
    assert.deepEqual(await health.json(), { status: 'ok' });

    const discovery = await fetch(`${publicUrl}/.well-known/oauth-authorization-server`);
    assert.equal(discovery.status, 200);
    const metadata = (await discovery.json()) as Record<string, unknown>;
    assert.equal(metadata.issuer, publicUrl);
    assert.equal(metadata.token_endpoint, `${publicUrl}/token`);
    assert.ok((metadata.code_challenge_methods_supported as string[]).includes('S256'), 'PKCE S256 advertised');

    // With no servers configured the built-in demo MCP server (imported from dist/demo at start) sits at /mcp.
    const challenge = await fetch(`${publicUrl}/mcp`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    assert.equal(challenge.status, 401);
    assert.match(challenge.headers.get('www-authenticate') ?? '', /resource_metadata="[^"]*\/\.well-known\/oauth-protected-resource\/mcp"/);
    assert.match(output, /username: demo/, 'the first start announces the demo account');

    child.kill('SIGTERM');
    const exit = await exitWithin(child, 15_000);
    assert.deepEqual(exit, { code: 0, signal: null }, `serve stops cleanly on SIGTERM:\n${output}`);
  });
});
