/**
 * `mcp-oauth-gateway keys list | rotate` (src/cli/keys.ts), run as a separate process against the
 * SQLite file a gateway is using in this process, as an operator would while gateways keep serving.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type RunningGateway, startGateway } from '../../../src/app.ts';
import { RELOAD_INTERVAL_MS } from '../../../src/authorization/signing-key-ring.ts';
import { PRE_PUBLICATION_MS } from '../../../src/authorization/signing-keys.ts';
import { runKeys } from '../../../src/cli/keys.ts';
import { loadConfig } from '../../../src/config/load.ts';
import { createLogger } from '../../../src/observability/logger.ts';
import { TestClock } from '../../support/clock.ts';
import { freePort } from '../../support/ports.ts';

const MAIN = fileURLToPath(new URL('../../../src/cli/main.ts', import.meta.url));

/** The environment without MCP_GATEWAY_* overrides, so only the file configures the command. */
function cleanEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('MCP_GATEWAY_')));
}

async function cli(...args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: cleanEnv() });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const [status] = (await once(child, 'close')) as [number | null];
  return { status, stdout, stderr };
}

function fakeIo() {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
  return { stdout, stderr, out: () => out, err: () => err };
}

describe('keys commands', () => {
  let dir: string;
  let configFile: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mcpgw-keys-'));
    configFile = join(dir, 'gateway.yaml');
    const port = await freePort();
    await writeFile(
      configFile,
      [
        `publicUrl: http://localhost:${port}`,
        `listen: { host: 127.0.0.1, port: ${port} }`,
        `dataDir: ${JSON.stringify(dir)}`,
        'storage: { type: sqlite }',
        'signingKeys: { rotationPeriod: 0 }',
        'log: { level: silent }',
        '',
      ].join('\n'),
    );
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('usage errors exit 2 and name the problem', async () => {
    for (const [args, message] of [
      [[], /keys needs a subcommand/],
      [['frobnicate'], /unknown keys subcommand "frobnicate"/],
      [['rotate', '--force'], /unknown option --force/],
      [['list', 'extra'], /unexpected argument "extra"/],
    ] as const) {
      const io = fakeIo();
      assert.equal(await runKeys([...args], io), 2, args.join(' '));
      assert.match(io.err(), message);
      assert.match(io.err(), /usage: mcp-oauth-gateway keys/);
    }
    const help = fakeIo();
    assert.equal(await runKeys(['rotate', '--help'], help), 0);
    assert.match(help.out(), /publish a new key now/);
  });

  test('before the first start there are no keys to list or rotate, and no encryption key is created', async () => {
    for (const command of ['list', 'rotate']) {
      const run = await cli('keys', command, '--config', configFile);
      assert.equal(run.status, 1, run.stderr);
      assert.match(run.stderr, /ERR_AUTHORIZATION_KEYS_MISSING/);
    }
    assert.equal(existsSync(join(dir, 'encryption.key')), false);
  });

  test('rotate publishes the next key to a running gateway, which serves it and signs with it an hour later', async () => {
    const clock = new TestClock();
    const gateway: RunningGateway = await startGateway(await loadConfig({ path: configFile, env: cleanEnv() }), {
      clock,
      logger: createLogger('silent'),
      announce: () => {},
    });
    try {
      const jwks = async () => {
        const response = await fetch(`${gateway.listenUrl}/jwks`);
        return ((await response.json()) as { keys: Array<{ kid: string }> }).keys.map((key) => key.kid);
      };
      const [current] = await jwks();

      const rotated = await cli('keys', 'rotate', '--config', configFile);
      assert.equal(rotated.status, 0, rotated.stderr);
      const next = /published signing key (\S+);/.exec(rotated.stdout)?.[1];
      assert.ok(next && next !== current, rotated.stdout);
      assert.ok(!rotated.stdout.includes('"d"') && !rotated.stderr.includes('"d"'), 'no private key printed');

      const again = await cli('keys', 'rotate', `--config=${configFile}`);
      assert.equal(again.status, 0, again.stderr);
      assert.match(again.stdout, new RegExp(`key ${next} is already waiting to sign .*nothing changed`));

      const listed = await cli('keys', 'list', '-c', configFile);
      assert.equal(listed.status, 0, listed.stderr);
      assert.match(listed.stdout, new RegExp(`^${current}  active `, 'm'));
      assert.match(listed.stdout, new RegExp(`^${next}  next `, 'm'));

      // The gateway reads the record once its reload interval has passed, then publishes the key...
      clock.advance(RELOAD_INTERVAL_MS);
      assert.deepEqual(await jwks(), [current, next]);
      // ...and signs with it once the pre-publication hour is over; the old key only verifies.
      clock.advance(PRE_PUBLICATION_MS);
      assert.deepEqual(await jwks(), [next, current]);
    } finally {
      await gateway.close();
    }
  });
});
