/**
 * `mcp-oauth-gateway admin …` (src/cli/admin.ts, docs/admin.md), run as a separate process against
 * the storage a gateway is serving from (its SQLite file, then a real redis-server), as an operator would: real logins through the consent
 * page and the upstream IdP, then the commands, then their effect checked through the public
 * endpoints (the MCP endpoint after the gateway's revocation poll, driven with `sync()`; /token for
 * refresh; /authorize for a deleted registration). No output may contain a token, a token hash, a
 * client secret or an encryption key.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runAdmin } from '../../src/cli/admin.ts';
import { Browser } from '../support/browser.ts';
import { type CliRun, capturedIo, runCli } from '../support/cli.ts';
import { TestClock } from '../support/clock.ts';
import { type RunningRedis, redisUnavailable, startRedis } from '../support/redis.ts';
import { authorizeAndExchange, mcpInitialize, pkceAuthorizeUrl, type Registered, register, registerPublicClient, tokenRequest } from './oauth.ts';
import { type Stack, startStack } from './stack.ts';

/** The audit lines (JSON, one per line) a command wrote to stderr. */
function auditLines(run: CliRun): Array<Record<string, unknown>> {
  return run.stderr
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>)
    .filter((line) => String(line.event).startsWith('admin.'));
}

async function mcpStatus(stack: Stack, token: string): Promise<number> {
  const response = await mcpInitialize(stack.mcpUrl(), token);
  await response.body?.cancel();
  return response.status;
}

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/;

/**
 * The same commands against both shared backends: SQLite (the gateway's file) and Redis (a real
 * redis-server on loopback, which requires explicit `secrets.encryptionKeys`, see
 * src/config/schema/storage.ts). The operator's file is the gateway's own configuration either way.
 */
for (const backend of ['sqlite', 'redis'] as const) {
  describe(`admin commands against a running gateway (${backend})`, { skip: backend === 'redis' ? (redisUnavailable() ?? false) : false }, () => {
    let stack: Stack;
    let redis: RunningRedis | undefined;
    let configFile: string;
    const clock = new TestClock();
    /** Every credential handed out in this describe: none may ever be printed. */
    const secrets: string[] = [];
    /** Every byte any command printed, for the no-secret check at the end. */
    const printed: string[] = [];

    async function cli(...args: string[]): Promise<CliRun> {
      const run = await runCli(...args);
      printed.push(run.stdout, run.stderr);
      return run;
    }

    before(async () => {
      if (backend === 'redis') redis = await startRedis();
      stack = await startStack({
        clock,
        configure: (config) => {
          // Long enough that no poll happens by itself: the tests drive `sync()`.
          config.tokens = { revocationPollInterval: 60 };
          if (redis) {
            config.storage = { type: 'redis', url: redis.url, keyPrefix: 'admin-e2e:' };
            config.secrets = { encryptionKeys: [randomBytes(32).toString('base64')] };
          }
        },
      });
      configFile = join(stack.dataDir, 'gateway.yaml');
      // JSON is YAML: the stack's own configuration, as the operator's file.
      await writeFile(configFile, JSON.stringify(stack.config));
    });
    after(async () => {
      await stack?.close();
      await redis?.close();
    });

    async function login(client: Registered, username: 'alice' | 'bob' = 'alice') {
      const tokens = await authorizeAndExchange(stack, new Browser({ ca: stack.ca.caPem }), client, { username });
      assert.equal(tokens.status, 200, JSON.stringify(tokens.body));
      const access = String(tokens.body.access_token);
      const refresh = String(tokens.body.refresh_token);
      secrets.push(access, refresh, tokens.code);
      return { access, refresh };
    }

    async function refreshWith(client: Registered, refreshToken: string) {
      const response = await tokenRequest(stack, { grant_type: 'refresh_token', refresh_token: refreshToken, client_id: client.client_id });
      if (response.status === 200) secrets.push(String(response.body.access_token), String(response.body.refresh_token));
      return response;
    }

    async function grantsOf(...filter: string[]) {
      const run = await cli('admin', 'grants', 'list', '--json', '-c', configFile, ...filter);
      assert.equal(run.status, 0, run.stderr);
      return (JSON.parse(run.stdout) as { grants: Array<Record<string, unknown>> }).grants;
    }

    // Kept on both backends: `revoke` checks its targets after the storage is open, so a usage error
    // must still close the Redis connection and let the process exit.
    test('usage errors exit 2 and name the problem; --help exits 0', async () => {
      for (const [args, message] of [
        [[], /admin needs a command/],
        [['frobnicate'], /unknown admin command "frobnicate"/],
        [['clients'], /admin clients needs one of: list, delete/],
        [['clients', 'purge'], /unknown admin clients subcommand "purge"/],
        [['clients', 'delete'], /<client_id> is missing/],
        [['clients', 'delete', 'a', 'b'], /unexpected argument "b"/],
        [['clients', 'list', '--jsn'], /unknown option --jsn \(did you mean --json\?\)/],
        [['grants', 'list', '--user'], /--user needs a value/],
        [['revoke', '--config', '/nonexistent', '--grant'], /--grant needs a value/],
      ] as const) {
        const io = capturedIo();
        assert.equal(await runAdmin([...args], io), 2, args.join(' '));
        assert.match(io.err(), message);
        assert.match(io.err(), /usage: mcp-oauth-gateway admin/);
      }
      for (const targets of [[], ['--user', 'a@example.com', '--grant', 'g']]) {
        const run = await cli('admin', 'revoke', '-c', configFile, ...targets);
        assert.equal(run.status, 2, run.stderr);
        assert.match(run.stderr, /revoke needs exactly one of --user, --client, --grant/);
      }
      const help = capturedIo();
      assert.equal(await runAdmin(['clients', 'delete', '--help'], help), 0);
      assert.match(help.out(), /delete a client's registration and revoke every grant it holds/);
      const top = await cli('--help');
      assert.match(top.stdout, /admin <command> \[--json\]/);
    });

    test('lists show clients, grants and users with what the operator needs, as tables and as JSON', async () => {
      const client = await registerPublicClient(stack, 'http://127.0.0.1:5555/callback', { client_name: 'Listed client' });
      const { refresh } = await login(client, 'bob');
      assert.equal((await refreshWith(client, refresh)).status, 200);

      const listed = await cli('admin', 'clients', 'list', '--json', '--config', configFile);
      assert.equal(listed.status, 0, listed.stderr);
      const clients = (JSON.parse(listed.stdout) as { clients: Array<Record<string, unknown>> }).clients;
      const mine = clients.find((c) => c.clientId === client.client_id);
      assert.ok(mine, listed.stdout);
      assert.deepEqual(Object.keys(mine).sort(), ['clientId', 'createdAt', 'grants', 'kind', 'lastUsedAt', 'name', 'redirectUris']);
      assert.equal(mine.name, 'Listed client');
      assert.equal(mine.kind, 'registered');
      assert.deepEqual(mine.redirectUris, ['http://127.0.0.1:5555/callback']);
      assert.match(String(mine.createdAt), ISO);
      assert.match(String(mine.lastUsedAt), ISO);
      assert.ok(String(mine.lastUsedAt) >= String(mine.createdAt));
      assert.equal(mine.grants, 1);

      const table = await cli('admin', 'clients', 'list', `--config=${configFile}`);
      assert.equal(table.status, 0, table.stderr);
      assert.match(table.stdout, /^CLIENT ID\s+NAME\s+KIND\s+REDIRECT URIS\s+CREATED\s+LAST USED\s+GRANTS$/m);
      assert.match(
        table.stdout,
        new RegExp(`^${client.client_id}\\s+Listed client\\s+registered\\s+http://127\\.0\\.0\\.1:5555/callback\\s+\\S+Z\\s+\\S+Z\\s+1$`, 'm'),
      );

      const grants = await grantsOf(`--client=${client.client_id}`);
      assert.equal(grants.length, 1);
      const [grant] = grants as [Record<string, unknown>];
      assert.deepEqual(Object.keys(grant).sort(), [
        'clientId',
        'createdAt',
        'expiresAt',
        'grantId',
        'lastRefreshAt',
        'lastTokenAt',
        'refreshes',
        'resources',
        'userId',
      ]);
      assert.equal(grant.userId, 'corp:bob');
      assert.equal(grant.clientId, client.client_id);
      assert.deepEqual(grant.resources, [{ resource: stack.mcpUrl(), server: 'tools', scopes: ['mcp:tools'] }]);
      assert.equal(grant.refreshes, 1);
      assert.match(String(grant.lastRefreshAt), ISO);
      assert.match(String(grant.createdAt), ISO);
      assert.match(String(grant.expiresAt), ISO);
      // By email, case-insensitively, the same grant.
      assert.deepEqual(await grantsOf('--user', 'BOB@example.com', `--client=${client.client_id}`), grants);

      const grantTable = await cli('admin', 'grants', 'list', '--user', 'corp:bob', '-c', configFile);
      assert.match(grantTable.stdout, /^GRANT ID\s+USER\s+CLIENT ID\s+SERVER\s+SCOPES\s+CREATED\s+LAST REFRESH$/m);
      assert.match(grantTable.stdout, new RegExp(`^${grant.grantId}\\s+corp:bob\\s+${client.client_id}\\s+tools\\s+mcp:tools\\s+\\S+Z\\s+\\S+Z$`, 'm'));

      const users = await cli('admin', 'users', 'list', '--json', '-c', configFile);
      assert.equal(users.status, 0, users.stderr);
      const bob = (JSON.parse(users.stdout) as { users: Array<Record<string, unknown>> }).users.find((u) => u.userId === 'corp:bob');
      assert.deepEqual(
        { ...bob, createdAt: 'time', lastLoginAt: 'time' },
        {
          userId: 'corp:bob',
          provider: 'corp',
          email: 'bob@example.com',
          name: 'Bob Example',
          groups: ['sales'],
          createdAt: 'time',
          lastLoginAt: 'time',
          grants: (await grantsOf('--user', 'corp:bob')).length,
        },
      );
      assert.match(String(bob?.lastLoginAt), ISO);
    });

    test('revoke --user: every grant of that user, found by email; access refused after the poll, refresh refused; others untouched', async () => {
      const first = await registerPublicClient(stack);
      const second = await registerPublicClient(stack);
      const alice1 = await login(first, 'alice');
      const alice2 = await login(second, 'alice');
      const bob = await login(second, 'bob');
      for (const token of [alice1.access, alice2.access, bob.access]) assert.equal(await mcpStatus(stack, token), 200);
      const aliceGrants = (await grantsOf('--user', 'corp:alice')).map((g) => g.grantId).sort();
      assert.ok(aliceGrants.length >= 2);

      const run = await cli('admin', 'revoke', '--user', 'alice@example.com', '--json', '-c', configFile);
      assert.equal(run.status, 0, run.stderr);
      const answer = JSON.parse(run.stdout) as { by: string; userId: string; revokedGrants: string[] };
      assert.equal(answer.by, 'user');
      assert.equal(answer.userId, 'corp:alice');
      assert.deepEqual([...answer.revokedGrants].sort(), aliceGrants);
      const [audit] = auditLines(run);
      assert.equal(audit?.event, 'admin.grants_revoked');
      assert.equal(audit?.by, 'user');
      assert.equal(audit?.userId, 'corp:alice');
      assert.equal(audit?.grantsRevoked, aliceGrants.length);
      assert.equal(typeof audit?.actor, 'string');
      assert.ok(String(audit?.actor).length > 0);

      // The gateway learns of it at its next poll (one storage read per interval, none per request).
      assert.equal(await mcpStatus(stack, alice1.access), 200, 'not polled yet');
      await stack.gateway.revocations.sync();
      assert.equal(await mcpStatus(stack, alice1.access), 401);
      assert.equal(await mcpStatus(stack, alice2.access), 401);
      assert.equal((await refreshWith(first, alice1.refresh)).body.error, 'invalid_grant');
      assert.equal((await refreshWith(second, alice2.refresh)).body.error, 'invalid_grant');
      assert.equal(await mcpStatus(stack, bob.access), 200, "bob's grant is not alice's");
      assert.equal((await refreshWith(second, bob.refresh)).status, 200);
      assert.deepEqual(await grantsOf('--user', 'corp:alice'), []);
    });

    test('revoke --client and revoke --grant end exactly the grants they name', async () => {
      const revokedClient = await registerPublicClient(stack);
      const otherClient = await registerPublicClient(stack);
      const gone = await login(revokedClient);
      const kept = await login(otherClient);
      const byClient = await cli('admin', 'revoke', `--client=${revokedClient.client_id}`, '-c', configFile);
      assert.equal(byClient.status, 0, byClient.stderr);
      assert.match(byClient.stdout, new RegExp(`^revoked 1 grant\\(s\\) of client ${revokedClient.client_id}\\.$`, 'm'));
      assert.equal(auditLines(byClient)[0]?.clientId, revokedClient.client_id);
      await stack.gateway.revocations.sync();
      assert.equal(await mcpStatus(stack, gone.access), 401);
      assert.equal((await refreshWith(revokedClient, gone.refresh)).body.error, 'invalid_grant');
      assert.equal(await mcpStatus(stack, kept.access), 200);

      // The client stays registered: it may log in again and gets a fresh grant.
      const again = await login(revokedClient);
      assert.equal(await mcpStatus(stack, again.access), 200);

      const [grant] = await grantsOf(`--client=${otherClient.client_id}`);
      const byGrant = await cli('admin', 'revoke', `--grant=${String(grant?.grantId)}`, '--json', '-c', configFile);
      assert.equal(byGrant.status, 0, byGrant.stderr);
      assert.deepEqual(JSON.parse(byGrant.stdout), { by: 'grant', grantId: grant?.grantId, revokedGrants: [grant?.grantId] });
      assert.deepEqual(
        auditLines(byGrant).map((line) => [line.event, line.by, line.grantId, line.grantsRevoked]),
        [['admin.grants_revoked', 'grant', grant?.grantId, 1]],
      );
      await stack.gateway.revocations.sync();
      assert.equal(await mcpStatus(stack, kept.access), 401);
      assert.equal((await refreshWith(otherClient, kept.refresh)).body.error, 'invalid_grant');
      assert.equal(await mcpStatus(stack, again.access), 200, 'another grant of the same user is untouched');
    });

    test('clients delete: the registration is gone, its tokens refused, and the client cannot start a login', async () => {
      const client = await registerPublicClient(stack, 'http://127.0.0.1:5555/callback', { client_name: 'Doomed client' });
      const { access, refresh } = await login(client);
      assert.equal(await mcpStatus(stack, access), 200);
      const [grant] = await grantsOf(`--client=${client.client_id}`);

      const run = await cli('admin', 'clients', 'delete', '--json', '-c', configFile, '--', client.client_id);
      assert.equal(run.status, 0, run.stderr);
      assert.deepEqual(JSON.parse(run.stdout), { clientId: client.client_id, registrationDeleted: true, revokedGrants: [grant?.grantId] });
      const audit = auditLines(run);
      assert.equal(audit.length, 1);
      assert.equal(audit[0]?.event, 'admin.client_deleted');
      assert.equal(audit[0]?.clientId, client.client_id);
      assert.equal(audit[0]?.clientName, 'Doomed client');
      assert.equal(audit[0]?.grantsRevoked, 1);

      await stack.gateway.revocations.sync();
      assert.equal(await mcpStatus(stack, access), 401);
      assert.equal((await refreshWith(client, refresh)).body.error, 'invalid_client');
      const authorize = await fetch(pkceAuthorizeUrl(stack, client, { scope: 'mcp:tools' }).url, { redirect: 'manual' });
      assert.equal(authorize.status, 400, 'an error page, never a redirect to the deleted client');
      assert.match(await authorize.text(), /invalid_client/);

      const listed = JSON.parse((await cli('admin', 'clients', 'list', '--json', '-c', configFile)).stdout) as { clients: Array<{ clientId: string }> };
      assert.ok(!listed.clients.some((c) => c.clientId === client.client_id));
      const twice = await cli('admin', 'clients', 'delete', '-c', configFile, '--', client.client_id);
      assert.equal(twice.status, 3);
      assert.match(twice.stderr, /ERR_CLI_ADMIN_NOT_FOUND/);
    });

    test('unknown clients, users and grants exit 3 with ERR_CLI_ADMIN_NOT_FOUND and change nothing', async () => {
      const before = await stack.gateway.storage.get('revocation-generation', 'generation');
      for (const args of [
        ['clients', 'delete', 'no-such-client'],
        ['revoke', '--client', 'no-such-client'],
        ['revoke', '--grant', 'no-such-grant'],
        ['revoke', '--user', 'nobody@example.com'],
        ['revoke', '--user', 'corp:nobody'],
        ['grants', 'list', '--user', 'nobody@example.com'],
      ]) {
        const run = await cli('admin', ...args, '-c', configFile);
        assert.equal(run.status, 3, `${args.join(' ')}: ${run.stderr}`);
        assert.match(run.stderr, /ERR_CLI_ADMIN_NOT_FOUND/);
        assert.equal(run.stdout, '');
        assert.deepEqual(auditLines(run), []);
      }
      assert.equal(await stack.gateway.storage.get('revocation-generation', 'generation'), before, 'no revocation written');
    });

    test('admin keys: the signing keys the gateway publishes, and their state', async () => {
      const jwks = (await (await fetch(`${stack.issuer}/jwks`)).json()) as { keys: Array<{ kid: string }> };
      const run = await cli('admin', 'keys', '--json', '-c', configFile);
      assert.equal(run.status, 0, run.stderr);
      const { keys } = JSON.parse(run.stdout) as { keys: Array<Record<string, unknown>> };
      assert.deepEqual(
        keys.map((key) => key.kid),
        jwks.keys.map((key) => key.kid),
      );
      assert.equal(keys[0]?.state, 'active');
      assert.deepEqual(Object.keys(keys[0] ?? {}).sort(), ['activatesAt', 'createdAt', 'kid', 'publishedUntil', 'state']);
      const table = await cli('admin', 'keys', '-c', configFile);
      assert.match(table.stdout, new RegExp(`^${jwks.keys[0]?.kid}\\s+active\\s`, 'm'));
    });

    test('a confidential client: listed and deleted without its secret ever printed; nothing printed holds a credential', async () => {
      const registered = await register(stack, {
        client_name: 'Confidential client',
        redirect_uris: ['https://app.example.com/callback'],
        token_endpoint_auth_method: 'client_secret_post',
      });
      assert.equal(registered.status, 201, JSON.stringify(registered.body));
      assert.equal(typeof registered.body.client_secret, 'string');
      secrets.push(String(registered.body.client_secret));
      const clientId = String(registered.body.client_id);
      const listed = await cli('admin', 'clients', 'list', '--json', '-c', configFile);
      assert.ok(listed.stdout.includes(clientId));
      // The sealed secret, as stored, is not printed either.
      const stored = await stack.gateway.storage.get<Record<string, unknown>>('oidc:Client', clientId);
      assert.equal(typeof stored?.client_secret_sealed, 'string');
      secrets.push(String(stored?.client_secret_sealed));
      assert.equal((await cli('admin', 'clients', 'delete', '-c', configFile, '--', clientId)).status, 0);
      // Everything at rest that is a credential or derived from one: refresh-token and code hashes, the
      // sealed client secrets, the encryption key.
      for (const model of ['RefreshToken', 'AuthorizationCode']) {
        for (const { key } of await stack.gateway.storage.list(`oidc:${model}`)) secrets.push(key);
      }
      for (const { value } of await stack.gateway.storage.list<Record<string, unknown>>('oidc:Client')) {
        if (typeof value.client_secret_sealed === 'string') secrets.push(value.client_secret_sealed);
      }
      const configuredKeys = stack.config.secrets?.encryptionKeys;
      if (configuredKeys) secrets.push(...configuredKeys);
      else secrets.push((await readFile(join(stack.dataDir, 'encryption.key'), 'utf8')).trim());
      const everything = printed.join('\n');
      assert.ok(printed.length > 20, 'the other tests ran commands');
      for (const secret of secrets) assert.ok(!everything.includes(secret), `a credential was printed (${secret.slice(0, 8)}…)`);
      assert.doesNotMatch(everything, /sha256\./);
      // On Redis, neither the gateway nor any command fell back to a SQLite file in dataDir.
      if (backend === 'redis') assert.ok(!existsSync(join(stack.dataDir, 'gateway.db')), 'a SQLite file was created');
    });
  });
}
