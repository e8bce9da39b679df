/**
 * The configuration loader: defaults, every problem reported at once with its line, environment
 * overrides (nested, numeric, JSON, `_FILE`), `${file:}`/`${env:}` references, and no secret ever
 * echoed back in an error.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { configReference } from '../../../src/config/docs.ts';
import { ConfigError, type ConfigProblem, formatConfigError, loadConfig } from '../../../src/config/load.ts';
import { ErrorCode } from '../../../src/core/errors.ts';

let dir = '';
let counter = 0;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'config-test-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function file(contents: string, name = `gateway-${++counter}.yaml`): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, contents);
  return path;
}

/** Loads and expects a ConfigError; returns it. */
async function problemsOf(options: Parameters<typeof loadConfig>[0]): Promise<ConfigError> {
  try {
    await loadConfig(options);
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected ConfigError, got ${String(error)}`);
    assert.equal(error.code, ErrorCode.CONFIG_INVALID);
    return error;
  }
  assert.fail('expected the configuration to be rejected');
}

function find(error: ConfigError, path: string): ConfigProblem {
  const problem = error.problems.find((candidate) => candidate.path === path);
  assert.ok(problem, `no problem at ${path}; got:\n${formatConfigError(error)}`);
  return problem;
}

const VALID = `publicUrl: https://mcp.example.com
identityProviders:
  - type: oidc
    issuer: https://idp.example.com
    clientId: gateway
servers:
  - name: github
    path: /github
    upstream:
      url: http://127.0.0.1:3000/mcp
`;

describe('defaults', () => {
  test('no file and no variables: every default', async () => {
    const config = await loadConfig({ env: {} });
    assert.equal(config.publicUrl, 'http://localhost:8080');
    assert.deepEqual(config.listen, { host: '127.0.0.1', port: 8080 });
    assert.equal(config.log.level, 'info');
    assert.deepEqual(config.storage, { type: 'sqlite' });
    assert.equal(config.servers, undefined);
    assert.equal(config.identityProviders, undefined);
  });

  test('the file comes from MCP_GATEWAY_CONFIG when no path is given', async () => {
    const path = await file(VALID);
    const config = await loadConfig({ env: { MCP_GATEWAY_CONFIG: path } });
    assert.equal(config.servers?.[0]?.path, '/github');
    assert.equal(config.servers?.[0]?.upstreamTimeoutMs, 30_000);
  });

  test('an empty file is all defaults', async () => {
    const config = await loadConfig({ path: await file(''), env: {} });
    assert.equal(config.listen.port, 8080);
  });

  test('publicUrl is normalised to its origin', async () => {
    const config = await loadConfig({ path: await file('publicUrl: https://MCP.Example.com:443/\n'), env: {} });
    assert.equal(config.publicUrl, 'https://mcp.example.com');
  });
});

describe('problems', () => {
  test('three distinct errors are all reported, each with its path and line', async () => {
    const path = await file(`publicUrl: https://mcp.example.com
listen:
  port: 99999
servers:
  - name: github
    path: github
    upstream:
      url: not a url
`);
    const error = await problemsOf({ path, env: {} });
    assert.equal(error.problems.length, 3, formatConfigError(error));
    assert.equal(find(error, 'listen.port').line, 3);
    assert.equal(find(error, 'servers[0].path').line, 6);
    assert.equal(find(error, 'servers[0].upstream.url').line, 8);
    assert.equal(error.file, path);

    const report = formatConfigError(error);
    assert.match(report, new RegExp(`^config error: 3 problems in ${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\n`));
    assert.match(report, /\n {2}servers\[0\]\.path \(line 6\): must start with \/ and not end with \//);
    assert.match(report, /\n {2}listen\.port \(line 3\): must be at most 65535/);
  });

  test('unknown keys are errors, with their line and a suggestion', async () => {
    const path = await file(`listen:
  port: 8080
  hots: 0.0.0.0
servers:
  - name: a
    path: /a
    upstream: { url: "http://127.0.0.1:1/mcp" }
    scope: [read]
`);
    const error = await problemsOf({ path, env: {} });
    assert.equal(error.problems.length, 2, formatConfigError(error));
    const host = find(error, 'listen.hots');
    assert.equal(host.line, 3);
    assert.match(host.message, /unknown key \(did you mean "host"\?\)/);
    assert.equal(find(error, 'servers[0].scope').line, 8);
  });

  test('unknown keys inside a union member are found through its discriminator', async () => {
    const path = await file(`identityProviders:
  - type: oidc
    issuer: https://idp.example.com
    clientId: gateway
    client_secret: nope
`);
    const error = await problemsOf({ path, env: {} });
    const problem = find(error, 'identityProviders[0].client_secret');
    assert.equal(problem.line, 5);
    assert.match(problem.message, /did you mean "clientSecret"/);
    assert.ok(!formatConfigError(error).includes('nope'));
  });

  test('a missing key is reported at the line of the mapping that should hold it', async () => {
    const path = await file(`servers:
  - name: a
    upstream: { url: "http://127.0.0.1:1/mcp" }
`);
    const error = await problemsOf({ path, env: {} });
    const problem = find(error, 'servers[0].path');
    assert.equal(problem.message, 'is required');
    assert.equal(problem.line, 2);
  });

  test('duplicate server paths and names are reported together with other errors', async () => {
    const path = await file(`listen:
  port: nope
servers:
  - name: a
    path: /mcp
    upstream: { url: "http://127.0.0.1:1/mcp" }
  - name: a
    path: /mcp
    upstream: { builtin: demo }
`);
    const error = await problemsOf({ path, env: {} });
    assert.equal(find(error, 'listen.port').line, 2);
    const duplicate = find(error, 'servers[1].path');
    assert.equal(duplicate.line, 8);
    assert.match(duplicate.message, /duplicate server path "\/mcp"/);
    assert.match(find(error, 'servers[1].name').message, /duplicate server name/);
  });

  test('introspection clients: a short secret, a bad id and a duplicate id are each reported at their key', async () => {
    const path = await file(`introspection:
  clients:
    - { clientId: docs, clientSecret: short }
    - { clientId: "has space", clientSecret: "${'s'.repeat(32)}" }
    - { clientId: docs, clientSecret: "${'s'.repeat(32)}" }
tokens:
  revocationPollInterval: 0
`);
    const error = await problemsOf({ path, env: {} });
    assert.ok(find(error, 'introspection.clients[0].clientSecret'));
    assert.ok(find(error, 'introspection.clients[1].clientId'));
    assert.match(find(error, 'introspection.clients[2].clientId').message, /duplicate client ID docs/);
    assert.ok(find(error, 'tokens.revocationPollInterval'));
  });

  test('two resources the gateway canonicalises to one audience are refused (RFC 8707: tokens would be shared)', async () => {
    // canonicalizeResource drops trailing slashes of the path, so these two name one audience.
    const path = await file(`publicUrl: https://mcp.example.com
servers:
  - name: a
    path: /a
    resource: https://mcp.example.com/tools?x=1
    upstream: { forwardAuth: true }
  - name: b
    path: /b
    resource: https://mcp.example.com/tools/?x=1
    upstream: { forwardAuth: true }
`);
    const error = await problemsOf({ path, env: {} });
    assert.equal(find(error, 'servers[1]').line, 7);
    assert.equal(error.problems.length, 1, formatConfigError(error));
  });

  test('a server path may not shadow the gateway or contain dot segments', async () => {
    const path = await file(`servers:
  - { name: a, path: /token, upstream: { builtin: demo } }
  - { name: b, path: /x/../y, upstream: { builtin: demo } }
`);
    const error = await problemsOf({ path, env: {} });
    assert.match(find(error, 'servers[0].path').message, /used by the gateway itself/);
    assert.match(find(error, 'servers[1].path').message, /"\.\." segments/);
  });

  test('a wrong discriminator and an upstream matching neither form get readable messages', async () => {
    const path = await file(`identityProviders:
  - type: saml
servers:
  - { name: a, path: /a, upstream: {} }
`);
    const error = await problemsOf({ path, env: {} });
    assert.equal(
      find(error, 'identityProviders[0].type').message,
      'must be one of: local, oidc, entra, google, okta, keycloak, auth0, authentik, cognito, github, oauth2',
    );
    assert.match(find(error, 'servers[0].upstream').message, /url is required.*or.*builtin must be "demo"/);
  });

  test('YAML syntax errors name line and column', async () => {
    const path = await file(`listen:
  port: 8080
servers: [ { name: a
log:
  level: "debug
`);
    const error = await problemsOf({ path, env: {} });
    assert.ok(error.problems.length >= 1);
    for (const problem of error.problems) {
      assert.equal(typeof problem.line, 'number');
      assert.equal(typeof problem.column, 'number');
    }
    assert.match(formatConfigError(error), /\n {2}line \d+:\d+: /);
  });

  test('duplicate keys name the key and its line:column, and validation still runs', async () => {
    const path = await file(`listen:
  port: 8080
  port: 9090
log:
  level: loud
`);
    const error = await problemsOf({ path, env: {} });
    const duplicate = error.problems.find((problem) => problem.message.startsWith('duplicate key'));
    assert.ok(duplicate, formatConfigError(error));
    assert.equal(duplicate.line, 3);
    assert.equal(duplicate.column, 3);
    assert.match(duplicate.message, /"port"/);
    assert.equal(find(error, 'log.level').line, 5);
  });

  test('an IdP token hand-over the upstream cannot receive is refused at its key', async () => {
    const path = await file(`servers:
  - name: shared
    path: /shared
    upstream: { stdio: { command: npx } }
    idpToken: { env: TOKEN }
  - name: http
    path: /http
    upstream: { url: "http://127.0.0.1:1/mcp" }
    idpToken: { env: TOKEN }
  - name: stdio-header
    path: /stdio-header
    upstream: { stdio: { command: npx, mode: per-user } }
    idpToken: { header: x-token }
  - name: fine
    path: /fine
    upstream: { stdio: { command: npx, mode: per-user } }
    idpToken: { env: TOKEN }
`);
    const error = await problemsOf({ path, env: {} });
    assert.equal(error.problems.length, 3, formatConfigError(error));
    assert.match(find(error, 'servers[0].idpToken.env').message, /mode: per-user/);
    assert.equal(find(error, 'servers[0].idpToken.env').line, 5);
    assert.match(find(error, 'servers[1].idpToken.env').message, /mode: per-user/);
    assert.match(find(error, 'servers[2].idpToken.header').message, /idpToken\.env/);
  });

  test('a file that is not a mapping, and a file that does not exist', async () => {
    const list = await problemsOf({ path: await file('- a\n- b\n'), env: {} });
    assert.match(list.problems[0]?.message ?? '', /must be a mapping/);
    const missing = await problemsOf({ path: join(dir, 'nope.yaml'), env: {} });
    assert.match(formatConfigError(missing), /cannot read the configuration file \(ENOENT\)/);
  });
});

describe('environment overrides', () => {
  test('nested, numeric, boolean, enum and list keys', async () => {
    const path = await file(VALID);
    const config = await loadConfig({
      path,
      env: {
        MCP_GATEWAY_PUBLIC_URL: 'https://gw.example.org',
        MCP_GATEWAY_LISTEN__PORT: '9000',
        MCP_GATEWAY_LISTEN__HOST: '0.0.0.0',
        MCP_GATEWAY_TRUST_PROXY: 'true',
        MCP_GATEWAY_LOG__LEVEL: 'debug',
        MCP_GATEWAY_CLIENT_ID_METADATA_DOCUMENTS__ALLOW_HOSTS: '["a.example.com","*.b.example.com"]',
        MCP_GATEWAY_CLIENT_ID_METADATA_DOCUMENTS__DENY_HOSTS: 'evil.example.com, worse.example.com',
        MCP_GATEWAY_SERVERS__0__UPSTREAM__URL: 'http://10.0.0.5:8080/mcp',
        MCP_GATEWAY_SERVERS__0__UPSTREAM_TIMEOUT_MS: '5000',
        MCP_GATEWAY_IDENTITY_PROVIDERS__0__AUTHORIZATION_PARAMS: '{"prompt":"login"}',
        MCP_GATEWAY_STORAGE: '{"type":"memory"}',
        MCP_GATEWAY_DATA_DIR: '', // empty means unset
        UNRELATED: 'x',
      },
    });
    assert.equal(config.publicUrl, 'https://gw.example.org');
    assert.deepEqual(config.listen, { host: '0.0.0.0', port: 9000 });
    assert.equal(config.trustProxy, true);
    assert.equal(config.log.level, 'debug');
    assert.deepEqual(config.clientIdMetadataDocuments.allowHosts, ['a.example.com', '*.b.example.com']);
    assert.deepEqual(config.clientIdMetadataDocuments.denyHosts, ['evil.example.com', 'worse.example.com']);
    assert.deepEqual(config.servers?.[0]?.upstream, { url: 'http://10.0.0.5:8080/mcp', transport: 'streamable-http' });
    assert.equal(config.servers?.[0]?.upstreamTimeoutMs, 5000);
    assert.equal(config.servers?.[0]?.name, 'github'); // the rest of the entry is kept
    const provider = config.identityProviders?.[0];
    assert.equal(provider?.type, 'oidc');
    assert.deepEqual(provider?.type === 'oidc' ? provider.authorizationParams : undefined, { prompt: 'login' });
    assert.deepEqual(config.storage, { type: 'memory' });
    assert.equal(config.dataDir, './data');
  });

  test('several workers need shared storage', async () => {
    const error = await problemsOf({ env: { MCP_GATEWAY_WORKERS: '2', MCP_GATEWAY_STORAGE: '{"type":"memory"}' } });
    assert.match(find(error, 'workers').message, /shared storage/);
    const config = await loadConfig({ env: { MCP_GATEWAY_WORKERS: '2' } });
    assert.equal(config.workers, 2);
  });

  test('whole lists as JSON, then one key inside them', async () => {
    const config = await loadConfig({
      env: {
        MCP_GATEWAY_SERVERS: '[{"name":"a","path":"/a","upstream":{"builtin":"demo"}}]',
        MCP_GATEWAY_SERVERS__0__PATH: '/b',
      },
    });
    assert.equal(config.servers?.[0]?.path, '/b');
  });

  test('a bad value is attributed to its variable; an unknown variable is an error', async () => {
    const error = await problemsOf({
      env: { MCP_GATEWAY_LISTEN__PORT: 'ninety', MCP_GATEWAY_LISTN__PORT: '1', MCP_GATEWAY_STORAGE: '{bad json' },
    });
    const port = find(error, 'listen.port');
    assert.equal(port.source, 'MCP_GATEWAY_LISTEN__PORT');
    assert.equal(port.line, undefined);
    assert.match(port.message, /expected a number, got a string/);
    assert.ok(error.problems.some((problem) => problem.source === 'MCP_GATEWAY_LISTN__PORT' && /unknown environment variable/.test(problem.message)));
    assert.match(find(error, 'storage').message, /not valid JSON/);
    assert.match(formatConfigError(error), /listen\.port \(from MCP_GATEWAY_LISTEN__PORT\): /);
    assert.ok(!formatConfigError(error).includes('{bad json'));
  });

  test('_FILE reads the value from a file: trimmed, one list item per line', async () => {
    const keyA = Buffer.alloc(32, 1).toString('base64');
    const keyB = Buffer.alloc(32, 2).toString('base64');
    const keys = await file(`${keyA}\n\n${keyB}\n`, 'keys.txt');
    const cookie = await file(`${'c'.repeat(40)}\n`, 'cookie.txt');
    // The file is read while validating, so it must exist; the loader only checks that it is PEM.
    const ca = await file('-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n', 'ca.pem');
    const config = await loadConfig({
      env: {
        MCP_GATEWAY_SECRETS__ENCRYPTION_KEYS_FILE: keys,
        MCP_GATEWAY_CONSENT__COOKIE_SECRET_FILE: cookie,
        // A key whose own name ends in File is set directly, not read from a file.
        MCP_GATEWAY_EXTRA_CA_CERTIFICATES_FILE: ca,
      },
    });
    assert.deepEqual(config.secrets.encryptionKeys, [keyA, keyB]);
    assert.equal(config.consent.cookieSecret, 'c'.repeat(40));
    assert.equal(config.extraCaCertificatesFile, ca);
  });

  test('a _FILE that cannot be read, and a key set twice', async () => {
    const error = await problemsOf({
      env: {
        MCP_GATEWAY_CONSENT__COOKIE_SECRET_FILE: join(dir, 'missing'),
        MCP_GATEWAY_LOG__LEVEL: 'info',
        MCP_GATEWAY_LOG__LEVEL_FILE: join(dir, 'missing'),
      },
    });
    const cookie = find(error, 'consent.cookieSecret');
    assert.equal(cookie.source, 'MCP_GATEWAY_CONSENT__COOKIE_SECRET_FILE');
    assert.match(cookie.message, /cannot read file .*ENOENT/);
    assert.match(find(error, 'log.level').message, /set by both MCP_GATEWAY_LOG__LEVEL and MCP_GATEWAY_LOG__LEVEL_FILE/);
  });
});

describe('trustProxy', () => {
  test('true/false, a hop count, or a list of addresses, ranges and proxy-addr names', async () => {
    for (const [yaml, expected] of [
      ['true', true],
      ['false', false],
      ['2', 2],
      ['[loopback, linklocal, uniquelocal, 10.0.0.0/8, "::1", "fd00::/8"]', ['loopback', 'linklocal', 'uniquelocal', '10.0.0.0/8', '::1', 'fd00::/8']],
    ] as const) {
      const config = await loadConfig({ path: await file(`trustProxy: ${yaml}\n`), env: {} });
      assert.deepEqual(config.trustProxy, expected, yaml);
    }
  });

  test('a list entry proxy-addr cannot compile is refused at its index; a negative or fractional count is refused', async () => {
    const error = await problemsOf({ path: await file('trustProxy:\n  - loopback\n  - 10.0.0.0/33\n  - not-an-address\n'), env: {} });
    assert.equal(find(error, 'trustProxy[1]').line, 3);
    assert.equal(find(error, 'trustProxy[2]').line, 4);
    assert.equal(error.problems.length, 2, formatConfigError(error));
    for (const count of ['-1', '1.5']) find(await problemsOf({ path: await file(`trustProxy: ${count}\n`), env: {} }), 'trustProxy');
  });

  test('from the environment: a boolean word, a count, or a comma-separated list', async () => {
    const read = async (value: string) => (await loadConfig({ env: { MCP_GATEWAY_TRUST_PROXY: value } })).trustProxy;
    assert.equal(await read('yes'), true);
    assert.equal(await read('1'), 1);
    assert.deepEqual(await read('loopback, 10.0.0.0/8'), ['loopback', '10.0.0.0/8']);
    find(await problemsOf({ env: { MCP_GATEWAY_TRUST_PROXY: 'bogus' } }), 'trustProxy[0]');
  });
});

describe('references in the YAML', () => {
  test('${file:} (relative to the config file) and ${env:} are replaced', async () => {
    await file('idp-client-secret\n', 'idp-secret');
    const path = await file(`identityProviders:
  - type: oidc
    issuer: \${env:IDP_ISSUER}
    clientId: gateway
    clientSecret: \${file:./idp-secret}
`);
    const config = await loadConfig({ path, env: { IDP_ISSUER: 'https://login.example.com' } });
    const provider = config.identityProviders?.[0];
    assert.ok(provider?.type === 'oidc');
    assert.equal(provider.clientSecret, 'idp-client-secret');
    assert.equal(provider.issuer, 'https://login.example.com');
  });

  test('unresolvable references are reported at their line, once', async () => {
    const path = await file(`identityProviders:
  - type: oidc
    issuer: \${env:NOT_SET}
    clientId: gateway
    clientSecret: \${file:/nonexistent/secret}
publicUrl: https://\${env:HOST}
`);
    const error = await problemsOf({ path, env: {} });
    assert.equal(error.problems.length, 3, formatConfigError(error));
    assert.equal(find(error, 'identityProviders[0].issuer').line, 3);
    assert.match(find(error, 'identityProviders[0].issuer').message, /"NOT_SET" is not set/);
    assert.equal(find(error, 'identityProviders[0].clientSecret').line, 5);
    assert.match(find(error, 'publicUrl').message, /must be the whole value/);
  });
});

describe('secrets in error messages', () => {
  test('no secret value appears in the report, whatever its source', async () => {
    const fileSecret = 'from-a-file-Zq8V1x';
    await file(`${fileSecret}\n`, 'bad-secret');
    const yamlSecret = 'yaml-cookie-Kp2Wm';
    const badKey = 'not-a-32-byte-key-Rt5Y';
    const path = await file(`consent:
  cookieSecret: ${yamlSecret}
identityProviders:
  - type: oidc
    issuer: not a url
    clientId: gateway
    clientSecret: \${file:./bad-secret}
    scopes: openid
secrets:
  encryptionKeys: [${badKey}]
`);
    const envSecret = 'env-file-secret-Lm3Qs';
    const envFile = await file(`${envSecret}\n`, 'env-secret');
    const error = await problemsOf({ path, env: { MCP_GATEWAY_UI__PRODUCT_NAME_FILE: envFile, MCP_GATEWAY_LISTEN__PORT_FILE: envFile } });
    const report = formatConfigError(error);
    assert.equal(error.problems.length, 5, report);
    for (const secret of [fileSecret, yamlSecret, badKey, envSecret]) {
      assert.ok(!report.includes(secret), `report shows ${secret}:\n${report}`);
    }
    assert.match(report, /consent\.cookieSecret \(line 2\): must be at least 32 characters/);
    assert.match(report, /secrets\.encryptionKeys\[0\] \(line 10\): must be 32 bytes/);
    assert.match(report, /listen\.port \(from MCP_GATEWAY_LISTEN__PORT_FILE\): expected a number, got a string/);
  });

  test('a secret value quoted by another message is scrubbed', async () => {
    const secret = 'shared-Value-9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c';
    const path = await file(`consent:
  cookieSecret: "${secret}"
servers:
  - { name: a, path: /a, upstream: { builtin: demo } }
  - { name: b, path: /a, upstream: { builtin: demo } }
`);
    // The gateway's own message quotes the duplicate path; make that path contain the secret.
    const error = await problemsOf({ path, env: { MCP_GATEWAY_SERVERS__1__PATH: `/${secret}`, MCP_GATEWAY_SERVERS__0__PATH: `/${secret}` } });
    const report = formatConfigError(error);
    assert.ok(!report.includes(secret), report);
    assert.match(report, /duplicate server path "\/\[redacted\]"/);
  });
});

describe('reference', () => {
  test('lists every key with type, default and variable', () => {
    const reference = configReference();
    assert.match(reference, /^# Configuration reference/);
    assert.match(
      reference,
      /### `listen\.port`\n\nTCP port[^\n]*\n\n- Type: integer from 0 to 65535\n- Default: `8080`\n- Environment: `MCP_GATEWAY_LISTEN__PORT`/,
    );
    assert.match(reference, /`MCP_GATEWAY_SECRETS__ENCRYPTION_KEYS`/);
    assert.match(reference, /`MCP_GATEWAY_IDENTITY_PROVIDERS__<N>__CLIENT_SECRET`/);
    assert.match(reference, /`MCP_GATEWAY_IDENTITY_PROVIDERS__<N>__USERS__<M>__PASSWORD_HASH`/);
    assert.match(reference, /`identityProviders\[\]` with `type: oidc`/);
    assert.match(reference, /`servers\[\]\.upstream\.url`/);
    // Every key has a description.
    const sections = reference
      .split(/\n(?=#{2,6} `)/)
      .slice(1)
      .filter((section) => !/` with /.test(section.split('\n')[0] ?? ''));
    for (const section of sections) {
      assert.match(section, /^#+ `[^`]+`\n\n[^-\s]/, `no description for ${section.split('\n')[0]}`);
    }
  });
});
