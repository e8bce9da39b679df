/**
 * `mcp-oauth-gateway keys list | rotate` (src/cli/keys.ts), run as a separate process against the
 * SQLite file a gateway is using in this process, as an operator would while gateways keep serving.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type RunningGateway, startGateway } from '../../../src/app.ts';
import { RELOAD_INTERVAL_MS } from '../../../src/authorization/signing-key-ring.ts';
import { PRE_PUBLICATION_MS } from '../../../src/authorization/signing-keys.ts';
import { runKeys } from '../../../src/cli/keys.ts';
import { loadConfig } from '../../../src/config/load.ts';
import { createLogger } from '../../../src/observability/logger.ts';
import { capturedIo, envWithoutGatewayOverrides, runCli } from '../../support/cli.ts';
import { TestClock } from '../../support/clock.ts';
import { freePort } from '../../support/ports.ts';

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
      const io = capturedIo();
      assert.equal(await runKeys([...args], io), 2, args.join(' '));
      assert.match(io.err(), message);
      assert.match(io.err(), /usage: mcp-oauth-gateway keys/);
    }
    const help = capturedIo();
    assert.equal(await runKeys(['rotate', '--help'], help), 0);
    assert.match(help.out(), /publish a new key now/);
  });

  test('before the first start there are no keys to list or rotate, and no encryption key is created', async () => {
    for (const command of ['list', 'rotate']) {
      const run = await runCli('keys', command, '--config', configFile);
      assert.equal(run.status, 1, run.stderr);
      assert.match(run.stderr, /ERR_AUTHORIZATION_KEYS_MISSING/);
    }
    assert.equal(existsSync(join(dir, 'encryption.key')), false);
  });

  test('rotate publishes the next key to a running gateway, which serves it and signs with it an hour later', async () => {
    const clock = new TestClock();
    const gateway: RunningGateway = await startGateway(await loadConfig({ path: configFile, env: envWithoutGatewayOverrides() }), {
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

      const rotated = await runCli('keys', 'rotate', '--config', configFile);
      assert.equal(rotated.status, 0, rotated.stderr);
      const next = /published signing key (\S+);/.exec(rotated.stdout)?.[1];
      assert.ok(next && next !== current, rotated.stdout);
      assert.ok(!rotated.stdout.includes('"d"') && !rotated.stderr.includes('"d"'), 'no private key printed');

      const again = await runCli('keys', 'rotate', `--config=${configFile}`);
      assert.equal(again.status, 0, again.stderr);
      assert.match(again.stdout, new RegExp(`key ${next} is already waiting to sign .*nothing changed`));

      const listed = await runCli('keys', 'list', '-c', configFile);
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
