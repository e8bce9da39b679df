import assert from 'node:assert/strict';
import { test } from 'node:test';
import { hostAllowed, hostMatches } from '../../../src/authorization/cimd.ts';
import { normaliseClientMetadata } from '../../../src/authorization/client-metadata.ts';
import { classifyRedirectUri, onlyLoopbackRedirects, redirectUriMatches } from '../../../src/authorization/redirect-uris.ts';
import { assertHostAllowed, isSpecialUseAddress } from '../../../src/authorization/ssrf.ts';
import { ErrorCode, hasErrorCode } from '../../../src/core/errors.ts';
import { OAuthError } from '../../../src/http/errors.ts';

test('loopback redirect URIs match on any port, everything else exactly (RFC 8252 §7.3, RFC 9700 §4.1.3)', () => {
  const registered = [
    'http://127.0.0.1/callback',
    'http://localhost:3334/oauth/callback',
    'https://claude.ai/api/mcp/auth_callback',
    'cursor://anysphere.cursor-mcp/oauth/callback',
  ];
  assert.ok(redirectUriMatches('http://127.0.0.1:51234/callback', registered));
  assert.ok(redirectUriMatches('http://localhost:9999/oauth/callback', registered));
  assert.ok(redirectUriMatches('https://claude.ai/api/mcp/auth_callback', registered));
  assert.ok(redirectUriMatches('cursor://anysphere.cursor-mcp/oauth/callback', registered));
  // Path, host, scheme and query must still match exactly.
  assert.ok(!redirectUriMatches('http://127.0.0.1:51234/other', registered));
  assert.ok(!redirectUriMatches('http://localhost:9999/callback', registered), 'host differs (localhost vs 127.0.0.1)');
  assert.ok(!redirectUriMatches('https://claude.ai:8443/api/mcp/auth_callback', registered), 'https ports are exact');
  assert.ok(!redirectUriMatches('https://claude.ai/api/mcp/auth_callback?x=1', registered));
  assert.ok(!redirectUriMatches('https://127.0.0.1/callback', registered), 'https loopback is not the loopback exception');
  assert.ok(!redirectUriMatches('http://evil.example/callback', registered));
});

test('redirect URI classification accepts https, loopback http and private-use schemes only', () => {
  assert.deepEqual(classifyRedirectUri('https://vscode.dev/redirect'), { kind: 'https' });
  assert.deepEqual(classifyRedirectUri('http://[::1]:33418/'), { kind: 'loopback' });
  assert.deepEqual(classifyRedirectUri('cursor://anysphere.cursor-mcp/oauth/callback'), { kind: 'private-use' });
  for (const bad of [
    'http://example.com/cb',
    'javascript:alert(1)',
    'data:text/html,hi',
    'https://a.example/cb#frag',
    'not a uri',
    'https://user:pw@a.example/cb',
  ]) {
    assert.ok('error' in classifyRedirectUri(bad), bad);
  }
  assert.ok(onlyLoopbackRedirects(['http://localhost/callback', 'http://127.0.0.1/callback']));
  assert.ok(!onlyLoopbackRedirects(['http://localhost/callback', 'https://claude.ai/cb']));
});

const knownScopes = new Set(['openid', 'offline_access']);

test('Cursor registration (three redirect URIs incl. a private-use scheme) becomes a native client with refresh', () => {
  const result = normaliseClientMetadata(
    {
      client_name: 'Cursor',
      redirect_uris: ['cursor://anysphere.cursor-mcp/oauth/callback', 'https://www.cursor.com/agents/mcp/oauth/callback', 'http://localhost:8787/callback'],
      token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code'],
      scope: 'openid mcp:tools',
    },
    { knownScopes, source: 'registration' },
  );
  assert.equal(result.application_type, 'native');
  assert.deepEqual(result.grant_types, ['authorization_code', 'refresh_token']);
  assert.equal(result.scope, 'openid', 'scopes the server cannot register are dropped, not fatal');
});

test('web clients stay web; CIMD documents default to auth method none; bad metadata names the problem', () => {
  const claude = normaliseClientMetadata(
    { client_name: 'Claude', redirect_uris: ['https://claude.ai/api/mcp/auth_callback'] },
    { knownScopes, source: 'registration' },
  );
  assert.equal(claude.application_type, undefined);
  assert.equal(claude.token_endpoint_auth_method, undefined, 'DCR keeps the RFC 7591 default');
  const cimd = normaliseClientMetadata(
    { client_id: 'https://x.example/c.json', client_name: 'X', redirect_uris: ['https://x.example/cb'] },
    { knownScopes, source: 'metadata-document' },
  );
  assert.equal(cimd.token_endpoint_auth_method, 'none');
  const onlyUnknownScope = normaliseClientMetadata({ redirect_uris: ['https://x.example/cb'], scope: 'weird' }, { knownScopes, source: 'registration' });
  assert.equal(onlyUnknownScope.scope, undefined);

  for (const [body, code] of [
    [[], 'invalid_client_metadata'],
    [{ redirect_uris: [] }, 'invalid_redirect_uri'],
    [{ redirect_uris: ['http://example.com/cb'] }, 'invalid_redirect_uri'],
    [{ redirect_uris: 'https://x.example/cb' }, 'invalid_redirect_uri'],
  ] as const) {
    assert.throws(
      () => normaliseClientMetadata(body, { knownScopes, source: 'registration' }),
      (error: unknown) => error instanceof OAuthError && error.error === code,
    );
  }
});

test('SSRF guard refuses special-use addresses, v4, v6 and v4-mapped', () => {
  for (const address of [
    '127.0.0.1',
    '10.1.2.3',
    '172.16.0.1',
    '192.168.1.1',
    '169.254.169.254',
    '100.64.0.1',
    '0.0.0.0',
    '::1',
    '::',
    'fc00::1',
    'fe80::1',
    '::ffff:127.0.0.1',
    '::ffff:10.0.0.1',
    '::ffff:7f00:1',
    '0:0:0:0:0:ffff:a00:1',
    'not-an-ip',
  ]) {
    assert.ok(isSpecialUseAddress(address), address);
  }
  for (const address of ['93.184.216.34', '1.1.1.1', '2606:4700:4700::1111', '::ffff:1.1.1.1']) {
    assert.ok(!isSpecialUseAddress(address), address);
  }
  const refused = (error: unknown) => hasErrorCode(error, ErrorCode.CIMD_FETCH_REFUSED);
  assert.throws(() => assertHostAllowed(new URL('https://127.0.0.1/c.json'), false), refused);
  assert.throws(() => assertHostAllowed(new URL('https://[::1]/c.json'), false), refused);
  assert.doesNotThrow(() => assertHostAllowed(new URL('https://127.0.0.1/c.json'), true));
  assert.doesNotThrow(() => assertHostAllowed(new URL('https://claude.ai/c.json'), false), 'names are checked at DNS time');
});

test('CIMD host policy: deny wins, empty allow list allows any, wildcard means subdomains only', () => {
  assert.ok(hostMatches('mcp.claude.ai', '*.claude.ai'));
  assert.ok(!hostMatches('claude.ai', '*.claude.ai'));
  assert.ok(!hostMatches('evilclaude.ai', '*.claude.ai'));
  assert.ok(hostMatches('VSCode.dev', 'vscode.dev'));
  assert.ok(hostAllowed('anything.example', { allowHosts: [], denyHosts: [] }));
  assert.ok(!hostAllowed('bad.example', { allowHosts: [], denyHosts: ['bad.example'] }));
  assert.ok(hostAllowed('claude.ai', { allowHosts: ['claude.ai', 'vscode.dev'], denyHosts: [] }));
  assert.ok(!hostAllowed('other.example', { allowHosts: ['claude.ai'], denyHosts: [] }));
  assert.ok(!hostAllowed('claude.ai', { allowHosts: ['claude.ai'], denyHosts: ['claude.ai'] }));
});

test('authorization scope: unknown scopes dropped, defaults applied when nothing grantable is left (RFC 6749 §3.3)', async () => {
  const { grantableScope } = await import('../../../src/authorization/request-scope.ts');
  const withScopes = { name: 'tools', resource: 'https://gw.example/mcp', scopes: ['mcp:tools', 'mcp:admin'] };
  const without = { name: 'demo', resource: 'https://gw.example/demo', scopes: [] };
  assert.equal(grantableScope('mcp:tools', withScopes), 'mcp:tools');
  assert.equal(grantableScope(null, withScopes), 'mcp:tools mcp:admin');
  assert.equal(grantableScope('', withScopes), 'mcp:tools mcp:admin', 'ChatGPT sends an empty scope=');
  assert.equal(grantableScope('other:server repo', withScopes), 'mcp:tools mcp:admin');
  assert.equal(grantableScope('offline_access', withScopes), 'mcp:tools mcp:admin offline_access');
  assert.equal(
    grantableScope('openid offline_access profile email', withScopes),
    'mcp:tools mcp:admin openid offline_access profile email',
    "Gemini CLI asks for the AS's scopes_supported: a token without the server's scopes would be refused by it",
  );
  assert.equal(grantableScope('openid mcp:tools', withScopes), 'openid mcp:tools', 'a request naming some of the server scopes gets just those');
  assert.equal(grantableScope(null, without), 'openid');
  assert.equal(grantableScope('mcp:tools', without), 'openid', "another server's scope is not grantable here");
  // `toolAccess` scopes are grantable but optional: only the scopes needed to connect are ever added.
  const optional = { name: 'lab', resource: 'https://gw.example/lab', scopes: ['mcp', 'lab:write'], requiredScopes: ['mcp'] };
  assert.equal(grantableScope('openid offline_access profile email', optional), 'mcp openid offline_access profile email');
  assert.equal(grantableScope(null, optional), 'mcp');
  assert.equal(grantableScope('lab:write', optional), 'mcp lab:write', 'a step-up that names only the optional scope still connects');
  assert.equal(grantableScope('mcp lab:write', optional), 'mcp lab:write');
});
