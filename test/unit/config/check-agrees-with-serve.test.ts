/**
 * `config check` and `serve` agree: every configuration a provider, a server or the start-up code
 * refuses when it is built is refused by the loader `config check` runs, at the key at fault. Each
 * case is run both ways: the runtime code, given the configuration without the schema in between,
 * must refuse it (so the case is real), and the loader must refuse it at `path`.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { stringify } from 'yaml';
import { runConfigCheck } from '../../../src/cli/config-check.ts';
import { type ConfigError, loadConfig } from '../../../src/config/load.ts';
import type { OidcFamilyConfig } from '../../../src/config/schema/providers-oidc.ts';
import { configSchema, type IdentityProviderConfig, type ServerConfig } from '../../../src/config/schema.ts';
import { ErrorCode, hasErrorCode } from '../../../src/core/errors.ts';
import { issuerFromPublicUrl, resourceFor } from '../../../src/core/resource-uri.ts';
import { GithubIdentityProvider } from '../../../src/idp/github.ts';
import { OAuth2IdentityProvider } from '../../../src/idp/oauth2.ts';
import { createOidcProvider } from '../../../src/idp/presets/index.ts';
import { type StdioServerDeps, startStdioServer } from '../../../src/stdio/index.ts';
import { loadEncryptionKeys } from '../../../src/storage/secret-box.ts';

const PUBLIC_URL = 'https://mcp.example.com';
const TID = '72f988bf-86f1-41af-91ab-2d7cd011db47';

let dir = '';
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'check-agrees-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Builds the identity provider the way `serve` does, for one entry. */
function buildProvider(entry: IdentityProviderConfig): unknown {
  if (entry.type === 'github') return new GithubIdentityProvider(entry);
  if (entry.type === 'oauth2') return new OAuth2IdentityProvider(entry);
  if (entry.type === 'local') throw new Error('no local cases');
  return createOidcProvider(entry as OidcFamilyConfig);
}

interface ProviderCase {
  name: string;
  /** A valid entry, and the keys that make it invalid. */
  valid: Record<string, unknown>;
  broken: Record<string, unknown>;
  path: string;
}

const providerCases: ProviderCase[] = [
  {
    name: 'oidc without the openid scope',
    valid: { type: 'oidc', issuer: 'https://idp.example.com' },
    broken: { scopes: ['email'] },
    path: 'identityProviders[0].scopes',
  },
  {
    name: 'oidc replacing state',
    valid: { type: 'oidc', issuer: 'https://idp.example.com' },
    broken: { authorizationParams: { state: 'x' } },
    path: 'identityProviders[0].authorizationParams.state',
  },
  {
    name: 'oidc with an http issuer',
    valid: { type: 'oidc', issuer: 'https://idp.example.com' },
    broken: { issuer: 'http://idp.example.com' },
    path: 'identityProviders[0].issuer',
  },
  { name: 'google with an http issuer', valid: { type: 'google' }, broken: { issuer: 'http://accounts.example.com' }, path: 'identityProviders[0].issuer' },
  {
    name: 'google replacing redirect_uri',
    valid: { type: 'google' },
    broken: { authorizationParams: { redirect_uri: 'https://evil.example' } },
    path: 'identityProviders[0].authorizationParams.redirect_uri',
  },
  {
    name: 'entra multi-tenant without allowedTenants',
    valid: { type: 'entra', tenant: TID },
    broken: { tenant: 'common' },
    path: 'identityProviders[0].allowedTenants',
  },
  {
    name: 'entra unqualified scope',
    valid: { type: 'entra', tenant: TID },
    broken: { scopes: ['openid', 'User.Read'] },
    path: 'identityProviders[0].scopes[1]',
  },
  {
    name: 'entra scopes of two resources',
    valid: { type: 'entra', tenant: TID },
    broken: { scopes: ['openid', 'api://a/x', 'api://b/y'] },
    path: 'identityProviders[0].scopes',
  },
  {
    name: 'entra resource parameter',
    valid: { type: 'entra', tenant: TID },
    broken: { authorizationParams: { resource: 'api://a' } },
    path: 'identityProviders[0].authorizationParams.resource',
  },
  { name: 'entra without openid', valid: { type: 'entra', tenant: TID }, broken: { scopes: ['offline_access'] }, path: 'identityProviders[0].scopes' },
  {
    name: 'auth0 with neither domain nor issuer',
    valid: { type: 'auth0', domain: 'a.auth0.com' },
    broken: { domain: undefined },
    path: 'identityProviders[0].domain',
  },
  {
    name: 'auth0 with both domain and issuer',
    valid: { type: 'auth0', domain: 'a.auth0.com' },
    broken: { issuer: 'https://a.auth0.com/' },
    path: 'identityProviders[0].issuer',
  },
  {
    name: 'cognito pool of another region',
    valid: { type: 'cognito', region: 'eu-west-1', userPoolId: 'eu-west-1_AbC123' },
    broken: { region: 'us-east-1' },
    path: 'identityProviders[0].userPoolId',
  },
  {
    name: 'cognito without region',
    valid: { type: 'cognito', region: 'eu-west-1', userPoolId: 'eu-west-1_AbC123' },
    broken: { region: undefined },
    path: 'identityProviders[0].region',
  },
  {
    name: 'okta replacing nonce',
    valid: { type: 'okta', issuer: 'https://a.okta.com' },
    broken: { authorizationParams: { nonce: 'n' } },
    path: 'identityProviders[0].authorizationParams.nonce',
  },
  {
    name: 'github replacing state',
    valid: { type: 'github' },
    broken: { authorizationParams: { state: 'x' } },
    path: 'identityProviders[0].authorizationParams.state',
  },
  {
    name: 'oauth2 client_secret_post without a secret',
    valid: { type: 'oauth2', authorizationUrl: 'https://idp.example.com/a', tokenUrl: 'https://idp.example.com/t', userinfoUrl: 'https://idp.example.com/u' },
    broken: { clientSecret: undefined, tokenEndpointAuthMethod: 'client_secret_post' },
    path: 'identityProviders[0].clientSecret',
  },
  {
    name: 'oauth2 public client without PKCE',
    valid: { type: 'oauth2', authorizationUrl: 'https://idp.example.com/a', tokenUrl: 'https://idp.example.com/t', userinfoUrl: 'https://idp.example.com/u' },
    broken: { clientSecret: undefined, pkce: false },
    path: 'identityProviders[0].pkce',
  },
  {
    name: 'oauth2 replacing code_challenge',
    valid: { type: 'oauth2', authorizationUrl: 'https://idp.example.com/a', tokenUrl: 'https://idp.example.com/t', userinfoUrl: 'https://idp.example.com/u' },
    broken: { authorizationParams: { code_challenge: 'c' } },
    path: 'identityProviders[0].authorizationParams.code_challenge',
  },
];

/** What the loader says about a configuration, as the key paths of its problems. */
async function refusedPaths(config: Record<string, unknown>): Promise<string[]> {
  const path = join(dir, `${Math.random().toString(36).slice(2)}.yaml`);
  await writeFile(path, stringify(config));
  try {
    await loadConfig({ path, env: {} });
  } catch (error) {
    assert.ok(hasErrorCode(error, ErrorCode.CONFIG_INVALID), String(error));
    return (error as ConfigError).problems.map((problem) => problem.path);
  }
  return [];
}

/** The entry with `broken` applied, keys set to undefined removed (YAML has no undefined). */
function withKeys(entry: Record<string, unknown>, broken: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries({ ...entry, ...broken }).filter(([, value]) => value !== undefined));
}

describe('identity providers: refused when built, refused by config check', () => {
  for (const { name, valid, broken, path } of providerCases) {
    test(name, async () => {
      const rawValid = { clientId: 'app', clientSecret: 'secret', ...valid };
      // The valid entry builds, so the refusal below comes from `broken` alone.
      const parsed = configSchema.parse({ identityProviders: [rawValid] }).identityProviders![0]!;
      assert.doesNotThrow(() => buildProvider(parsed));
      assert.throws(() => buildProvider(withKeys(parsed, broken) as IdentityProviderConfig), { code: ErrorCode.IDP_CONFIG_INVALID });

      const paths = await refusedPaths({ publicUrl: PUBLIC_URL, identityProviders: [withKeys(rawValid, broken)] });
      assert.ok(paths.includes(path), `expected a problem at ${path}; got ${JSON.stringify(paths)}`);
    });
  }
});

describe('servers and start-up: refused when started, refused by config check', () => {
  test('a host whose port is out of range forms no resource URI', async () => {
    const server = { name: 'tools', path: '/tools', host: 'tools.example.com:99999', upstream: { url: 'https://upstream.example.com/mcp' } };
    assert.throws(() => resourceFor(issuerFromPublicUrl(PUBLIC_URL), server), { code: ErrorCode.RESOURCE_URI_INVALID });
    assert.ok((await refusedPaths({ publicUrl: PUBLIC_URL, servers: [server] })).includes('servers[0].host'));
  });

  test('idpToken.env on a shared stdio process', async () => {
    const raw = { name: 'tools', path: '/tools', upstream: { stdio: { command: 'true' } }, idpToken: { env: 'TOKEN' } };
    const unchecked = { ...configSchema.parse({ servers: [{ ...raw, idpToken: undefined }] }).servers![0]!, idpToken: { env: 'TOKEN' } } as ServerConfig;
    const stdio = (unchecked.upstream as { stdio: Parameters<typeof startStdioServer>[1] }).stdio;
    // Refused before anything starts, so no dependencies are needed.
    await assert.rejects(startStdioServer(unchecked, stdio, {} as StdioServerDeps), { code: ErrorCode.CONFIG_INVALID });
    assert.ok((await refusedPaths({ publicUrl: PUBLIC_URL, servers: [raw] })).includes('servers[0].idpToken.env'));
  });

  test('an encryption key that is not 32 bytes', async () => {
    const key = Buffer.alloc(16, 7).toString('base64');
    await assert.rejects(loadEncryptionKeys({ ...configSchema.parse({}), secrets: { encryptionKeys: [key] } }), { code: ErrorCode.SECRET_BOX_KEY_INVALID });
    assert.ok((await refusedPaths({ publicUrl: PUBLIC_URL, secrets: { encryptionKeys: [key] } })).includes('secrets.encryptionKeys[0]'));
  });

  test('an extra CA file that cannot be read', async () => {
    const missing = join(dir, 'no-such-ca.pem');
    await assert.rejects(readFile(missing, 'utf8'), { code: 'ENOENT' }); // what the gateway does with it at start-up
    assert.ok((await refusedPaths({ publicUrl: PUBLIC_URL, extraCaCertificatesFile: missing })).includes('extraCaCertificatesFile'));
  });
});

test('the config check command itself refuses such a file: exit 1, the key path on stderr', async () => {
  const path = join(dir, 'oidc-email-only.yaml');
  await writeFile(path, stringify({ identityProviders: [{ type: 'oidc', issuer: 'https://idp.example.com', clientId: 'app', scopes: ['email'] }] }));
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let errors = '';
  stderr.on('data', (chunk: Buffer) => (errors += chunk.toString()));
  const code = await runConfigCheck(['--config', path], { stdin: new PassThrough(), stdout, stderr, env: {} });
  assert.equal(code, 1);
  assert.match(errors, /^ {2}identityProviders\[0\]\.scopes \(line \d+\): /m);
});
