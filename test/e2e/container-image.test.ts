/**
 * The container image and compose.yaml, built and run with podman, no image registry needed.
 *
 * 1. deploy/test-image.sh: a Debian base from debootstrap, `podman build` of the Dockerfile, `podman
 *    run` and the checks listed at its top. Exit 77 means the machine cannot (no podman, not root,
 *    containers cannot run): the test skips with the script's reason.
 * 2. compose.yaml, run by podman-compose on that image with Redis from Debian's redis-server package
 *    (the `redis` image cannot be pulled here; only `image:`, `build:` and the published port are
 *    changed): the SDK client registers, the demo account logs in, tools of the demo server answer
 *    through the gateway; Redis holds the gateway's keys with AOF and noeviction and refuses clients
 *    without the password; after Redis and the gateway restart, the client's tokens still work and its
 *    refresh token still refreshes.
 *
 * Opt-in: `IMAGE_TEST=1 npx node --test test/e2e/container-image.test.ts`. Not in the default suite: it
 * needs root, podman, debootstrap (and podman-compose for part 2), and takes about 4 minutes the first
 * time (debootstrap, npm ci inside the build), about 1 minute once the base image and the build layers
 * are kept. (The variable is not named MCP_GATEWAY_*: the gateway reads every such variable as
 * configuration and refuses unknown ones, which would break other tests run in the same environment.)
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse, stringify } from 'yaml';
import { configJsonSchema } from '../../src/config/load/schema-walker.ts';
import { Browser } from '../support/browser.ts';
import { connectWithLogin, TestOAuthClientProvider } from '../support/mcp-client.ts';
import { freePort, waitForUrl } from '../support/ports.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SCRIPT = join(ROOT, 'deploy/test-image.sh');
const SKIP_STATUS = 77;
const OPT_IN = process.env.IMAGE_TEST === '1';
const OPT_IN_REASON = 'opt-in: set IMAGE_TEST=1 (needs root and podman; slow)';

interface Run {
  code: number | null;
  output: string;
}

function run(command: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, output }));
  });
}

/** What deploy/test-image.sh built, once it passed. */
let built: { image: string; base: string; env: NodeJS.ProcessEnv } | undefined;

test('the container image builds, runs as uid 10001, answers /healthz, passes its HEALTHCHECK and keeps /data', { timeout: 15 * 60_000 }, async (t) => {
  if (!OPT_IN) return t.skip(OPT_IN_REASON);
  const { code, output } = await run('bash', [SCRIPT]);
  if (code === SKIP_STATUS) return t.skip(/^SKIP: (.*)$/m.exec(output)?.[1] ?? 'deploy/test-image.sh skipped');
  assert.equal(code, 0, `deploy/test-image.sh failed:\n${output}`);
  // Every check the script makes is one `ok - ` line; they go to the test's output as diagnostics.
  for (const line of output.split('\n').filter((l) => l.startsWith('ok - '))) t.diagnostic(line);
  assert.match(output, /^PASS: /m);
  const result = (name: string) => new RegExp(`^RESULT_${name}=(.*)$`, 'm').exec(output)?.[1] ?? '';
  const containersConf = result('CONTAINERS_CONF');
  built = { image: result('IMAGE'), base: result('BASE'), env: containersConf ? { ...process.env, CONTAINERS_CONF: containersConf } : process.env };
});

describe('compose.yaml, run by podman-compose', () => {
  let project: string | undefined;
  let env: NodeJS.ProcessEnv = process.env;
  const podman = (...args: string[]) => run('podman', args, { env });
  const compose = (...args: string[]) => run('podman-compose', args, { cwd: project, env });

  /** The container of a compose service (podman-compose 1.0 names them <project>_<service>_1). */
  async function container(service: string): Promise<string> {
    const names = await podman(
      'ps',
      '-a',
      '--filter',
      `label=com.docker.compose.project=${basename(project!).toLowerCase()}`,
      '--filter',
      `label=com.docker.compose.service=${service}`,
      '--format',
      '{{.Names}}',
    );
    const name = names.output.split('\n').find((line) => /^[\w.-]+$/.test(line));
    assert.ok(name, `no container for ${service}: ${names.output}`);
    return name;
  }

  after(async () => {
    if (!project) return;
    // The containers first, with their anonymous volumes (the image's /data in the demo service),
    // which podman-compose 1.0's `down -v` leaves behind; then the network and the named volumes.
    const names = await podman('ps', '-a', '-q', '--filter', `label=com.docker.compose.project=${basename(project).toLowerCase()}`);
    const ids = names.output.split('\n').filter((line) => /^[0-9a-f]{12,64}$/.test(line));
    if (ids.length > 0) await podman('rm', '--force', '--volumes', ...ids);
    await compose('down', '-v');
    await rm(project, { recursive: true, force: true });
  });

  test('the gateway on Redis serves the demo MCP server to a logged-in client, and keeps its state across restarts', { timeout: 10 * 60_000 }, async (t) => {
    if (!OPT_IN) return t.skip(OPT_IN_REASON);
    if (!built) return t.skip('the image was not built (see the test above)');
    if (!JSON.stringify(configJsonSchema()).includes('"redis"')) return t.skip('this build has no Redis storage backend (storage.type redis)');
    if ((await run('podman-compose', ['--version']).catch(() => ({ code: 127, output: '' }))).code !== 0) {
      return t.skip('podman-compose is not installed (apt-get install podman-compose)');
    }
    env = built.env;

    // The project: compose.yaml with only the images and the published port changed, the gateway
    // configuration as it is, and the secret files docs/container.md has the operator create.
    project = await mkdtemp(join(tmpdir(), 'mcpgwcompose'));

    // Redis from Debian's package on the same local base, as the `redis` image cannot be pulled here.
    const redisImage = 'localhost/mcp-oauth-gateway-test-redis:bookworm';
    const containerfile = join(project, 'redis.Containerfile');
    await writeFile(
      containerfile,
      [
        'ARG BASE',
        // biome-ignore lint/suspicious/noTemplateCurlyInString: a Containerfile's ${BASE}, not a template
        'FROM ${BASE}',
        'RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server && rm -rf /var/lib/apt/lists/* \\',
        ' && install -d -o redis -g redis -m 0750 /data',
        'WORKDIR /data',
        '',
      ].join('\n'),
    );
    const redisBuild = await podman('build', '--format', 'docker', '--build-arg', `BASE=${built.base}`, '-t', redisImage, '-f', containerfile, project);
    assert.equal(redisBuild.code, 0, redisBuild.output);

    const port = await freePort();
    const publicUrl = `http://localhost:${port}`;
    const file = parse(await readFile(join(ROOT, 'compose.yaml'), 'utf8')) as {
      services: Record<string, { image?: string; build?: unknown; ports?: string[] }>;
    };
    file.services.redis!.image = redisImage;
    for (const service of ['gateway', 'demo']) {
      file.services[service]!.image = built.image;
      delete file.services[service]!.build;
    }
    file.services.gateway!.ports = [`127.0.0.1:${port}:8080`];
    await writeFile(join(project, 'compose.yaml'), stringify(file));
    await mkdir(join(project, 'deploy/compose/secrets'), { recursive: true });
    await copyFile(join(ROOT, 'deploy/compose/gateway.yaml'), join(project, 'deploy/compose/gateway.yaml'));
    const redisPassword = (await run('openssl', ['rand', '-hex', '24'])).output.trim();
    await writeFile(join(project, 'deploy/compose/secrets/redis-password'), `${redisPassword}\n`);
    await writeFile(join(project, 'deploy/compose/secrets/encryption-key'), (await run('openssl', ['rand', '-base64', '32'])).output);

    env = { ...env, MCP_GATEWAY_PUBLIC_URL: publicUrl };
    const up = await compose('up', '-d');
    assert.equal(up.code, 0, up.output);
    const health = await waitForUrl(`${publicUrl}/healthz`, { timeoutMs: 90_000, ok: (status) => status === 200 });
    assert.deepEqual(await health.json(), { status: 'ok' });

    const gateway = await container('gateway');
    const redis = await container('redis');
    const logs = async () => (await podman('logs', gateway)).output;
    assert.match(await logs(), /"storage":"redis"/, 'the gateway runs on Redis storage');
    const password = /password: (\S+)/.exec(await logs())?.[1];
    assert.ok(password, 'the first start announces the demo password');
    for (const service of ['redis', 'demo', 'gateway']) {
      const check = await podman('healthcheck', 'run', await container(service));
      assert.equal(check.code, 0, `${service} health check: ${check.output}`);
    }

    // A client registers, the demo account logs in, and the demo server's tools answer through the gateway.
    const provider = new TestOAuthClientProvider({ mode: 'dcr', clientName: 'compose test' });
    const browser = new Browser();
    const client = await connectWithLogin({
      mcpUrl: `${publicUrl}/mcp`,
      provider,
      login: async (authorizationUrl) => {
        let page = await browser.goto(authorizationUrl);
        page = await browser.submitForm(page, { button: 'approve' });
        page = await browser.submitForm(page, { fields: { username: 'demo', password }, stopAt: provider.redirectUrl });
        return page.url;
      },
    });
    const echo = await client.callTool({ name: 'echo', arguments: { text: 'through compose' } });
    assert.deepEqual(echo.content, [{ type: 'text', text: 'through compose' }]);
    const whoami = (await client.callTool({ name: 'whoami', arguments: {} })).structuredContent as { authorizationHeaderPresent: boolean };
    assert.equal(whoami.authorizationHeaderPresent, false, 'the client token never reaches the demo server');
    await client.close();

    // Redis: the gateway's data under its prefix, AOF on, no eviction, no client without the password.
    const cli = async (...args: string[]) => (await podman('exec', '-e', `REDISCLI_AUTH=${redisPassword}`, redis, 'redis-cli', ...args)).output.trim();
    assert.match(await cli('--scan', '--pattern', 'mcp-gateway:*'), /^mcp-gateway:/m);
    assert.equal(await cli('config', 'get', 'appendonly'), 'appendonly\nyes');
    assert.equal(await cli('config', 'get', 'maxmemory-policy'), 'maxmemory-policy\nnoeviction');
    assert.match((await podman('exec', redis, 'redis-cli', 'ping')).output, /NOAUTH/);

    // Both restart; Redis reloads its append-only file. The tokens issued before still work: the
    // access token verifies (the signing keys are in Redis), the refresh token refreshes.
    const restart = await podman('restart', redis, gateway);
    assert.equal(restart.code, 0, restart.output);
    await waitForUrl(`${publicUrl}/healthz`, { timeoutMs: 90_000, ok: (status) => status === 200 });
    assert.equal((await logs()).match(/password: /g)?.length, 1, 'no second demo account after the restart');
    const logins = provider.authorizationUrls.length;
    const again = await connectWithLogin({ mcpUrl: `${publicUrl}/mcp`, provider, login: () => assert.fail('no new login after a restart') });
    assert.deepEqual((await again.callTool({ name: 'echo', arguments: { text: 'after restart' } })).content, [{ type: 'text', text: 'after restart' }]);
    await again.close();
    const before = provider.tokens()!;
    provider.saveTokens({ ...before, access_token: 'expired-or-forged' });
    const refreshed = await connectWithLogin({ mcpUrl: `${publicUrl}/mcp`, provider, login: () => assert.fail('the refresh token should have refreshed') });
    await refreshed.close();
    assert.notEqual(provider.tokens()!.refresh_token, before.refresh_token, 'a new refresh token was issued (rotation)');
    assert.equal(provider.authorizationUrls.length, logins, 'no authorization request since the first login');
  });
});
