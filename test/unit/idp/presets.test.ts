/**
 * The OIDC presets and the claim mapping as pure functions: what each provider type derives from its
 * few keys (issuer, parameters, claims), what it refuses at start-up, and the checks it adds on the
 * ID token (Entra tenant, Google Workspace domain). The flows themselves run against stand-ins in
 * test/e2e/idp-presets.test.ts and test/e2e/idp-failures.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { OidcFamilyConfig } from '../../../src/config/schema/providers-oidc.ts';
import type { IdentityProviderConfig } from '../../../src/config/schema.ts';
import { configSchema } from '../../../src/config/schema.ts';
import { booleanClaim, groupsFrom, identityFromClaims, MissingSubjectClaim, resolveClaimMapping, STANDARD_CLAIMS } from '../../../src/idp/claims.ts';
import { hasGroupsOverage } from '../../../src/idp/presets/entra-graph.ts';
import { createOidcProvider, oidcSettingsFor } from '../../../src/idp/presets/index.ts';
import { refusedAt } from './refused-at.ts';

const TID = '72f988bf-86f1-41af-91ab-2d7cd011db47';
const OTHER_TID = '9188040d-6c67-4c5b-b112-36a304b66dad';

/** One provider entry through the real schema, defaults applied. */
function parsed(entry: Record<string, unknown>): OidcFamilyConfig {
  const config = configSchema.parse({ identityProviders: [{ clientId: 'app', clientSecret: 'secret', ...entry }] });
  return config.identityProviders![0] as IdentityProviderConfig as OidcFamilyConfig;
}

/**
 * A valid entry with some keys replaced afterwards, bypassing the schema: the presets re-check what the
 * schema checks, for settings that do not come through it (test/unit/config/ covers the schema side).
 */
function unchecked(entry: Record<string, unknown>, replaced: Record<string, unknown>): OidcFamilyConfig {
  return { ...parsed(entry), ...replaced } as OidcFamilyConfig;
}

describe('claim mapping', () => {
  test('standard claims: sub, email, verification, name falling back to preferred_username, groups', () => {
    const identity = identityFromClaims(
      { sub: 'u1', email: 'a@example.com', email_verified: true, preferred_username: 'alice', groups: ['a', 'b', 'a'] },
      STANDARD_CLAIMS,
    );
    assert.deepEqual(identity, { subject: 'u1', email: 'a@example.com', emailVerified: true, name: 'alice', groups: ['a', 'b'] });
  });

  test('operator overrides replace the preset defaults key by key; groups may be one claim or several merged', () => {
    const mapping = resolveClaimMapping(STANDARD_CLAIMS, { subject: 'employee_id', groups: ['roles', 'https://example.com/groups'] });
    assert.equal(mapping.subject, 'employee_id');
    assert.equal(mapping.email, 'email');
    const identity = identityFromClaims({ sub: 'x', employee_id: 4711, roles: 'admin', 'https://example.com/groups': ['eng'] }, mapping);
    assert.equal(identity.subject, '4711', 'a numeric id becomes a string');
    assert.deepEqual(identity.groups, ['admin', 'eng'], 'a single string counts as one group');
    assert.deepEqual(resolveClaimMapping(STANDARD_CLAIMS, { groups: 'cognito:groups' }).groups, ['cognito:groups']);
  });

  test('no subject, no identity: a missing or empty subject claim is an error naming the claim', () => {
    assert.throws(
      () => identityFromClaims({ sub: 'x' }, { ...STANDARD_CLAIMS, subject: 'oid' }),
      (error: unknown) => error instanceof MissingSubjectClaim && error.claim === 'oid',
    );
    assert.throws(() => identityFromClaims({ sub: '' }, STANDARD_CLAIMS), MissingSubjectClaim);
    assert.throws(() => identityFromClaims({ sub: { id: 1 } }, STANDARD_CLAIMS), MissingSubjectClaim);
  });

  test('email_verified as "true"/"false" strings (Cognito) counts; anything else is unknown, never true', () => {
    assert.equal(booleanClaim('true'), true);
    assert.equal(booleanClaim('false'), false);
    assert.equal(booleanClaim(1), undefined);
    assert.equal(booleanClaim('yes'), undefined);
    assert.equal(identityFromClaims({ sub: 's', email: 'e@x.example', email_verified: 'TRUE' }, STANDARD_CLAIMS).emailVerified, undefined);
  });

  test('group values that are not strings are dropped', () => {
    assert.deepEqual(groupsFrom({ groups: ['a', 3, null, '', 'b'] }, ['groups']), ['a', 'b']);
    assert.deepEqual(groupsFrom({}, ['groups']), []);
  });
});

describe('issuers derived from the preset keys', () => {
  test('keycloak: <baseUrl>/realms/<realm>, with or without a trailing slash on the base', () => {
    assert.equal(
      oidcSettingsFor(parsed({ type: 'keycloak', baseUrl: 'https://sso.example.com/', realm: 'acme' })).issuer,
      'https://sso.example.com/realms/acme',
    );
    assert.equal(
      oidcSettingsFor(parsed({ type: 'keycloak', baseUrl: 'https://sso.example.com/auth', realm: 'acme' })).issuer,
      'https://sso.example.com/auth/realms/acme',
    );
  });

  test('authentik: <baseUrl>/application/o/<slug>/ with the trailing slash', () => {
    assert.equal(
      oidcSettingsFor(parsed({ type: 'authentik', baseUrl: 'https://auth.example.com', slug: 'mcp' })).issuer,
      'https://auth.example.com/application/o/mcp/',
    );
  });

  test('auth0: https://<domain>/ with the trailing slash; audience sent as a parameter', () => {
    const settings = oidcSettingsFor(parsed({ type: 'auth0', domain: 'example.eu.auth0.com', audience: 'https://api.example.com' }));
    assert.equal(settings.issuer, 'https://example.eu.auth0.com/');
    assert.deepEqual(settings.presetParams, { audience: 'https://api.example.com' });
    assert.throws(() => oidcSettingsFor(unchecked({ type: 'auth0', domain: 'a.auth0.com' }, { domain: undefined })), refusedAt('domain'));
    assert.throws(() => oidcSettingsFor(unchecked({ type: 'auth0', domain: 'a.auth0.com' }, { issuer: 'https://a.auth0.com/' })), refusedAt('issuer'));
  });

  test('cognito: from region + user pool id; groups from cognito:groups; no offline_access by default', () => {
    const settings = oidcSettingsFor(parsed({ type: 'cognito', region: 'eu-west-1', userPoolId: 'eu-west-1_AbC123' }));
    assert.equal(settings.issuer, 'https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123');
    assert.deepEqual(settings.claims.groups, ['cognito:groups']);
    assert.equal(settings.scopes.includes('offline_access'), false);
    assert.throws(
      () => oidcSettingsFor(unchecked({ type: 'cognito', region: 'eu-west-1', userPoolId: 'eu-west-1_AbC123' }, { region: 'us-east-1' })),
      refusedAt('userPoolId'),
    );
    assert.throws(() => oidcSettingsFor(parsed({ type: 'cognito', region: 'eu-west-1' })), /region and userPoolId/);
  });

  test('okta and generic oidc keep the issuer as written (no trailing slash added)', () => {
    assert.equal(oidcSettingsFor(parsed({ type: 'okta', issuer: 'https://acme.okta.com/oauth2/default' })).issuer, 'https://acme.okta.com/oauth2/default');
    assert.equal(oidcSettingsFor(parsed({ type: 'oidc', issuer: 'https://idp.example.com' })).issuer, 'https://idp.example.com');
  });
});

describe('google', () => {
  test('asks for offline access with a consent prompt, no offline_access scope; identity from the ID token only', () => {
    const settings = oidcSettingsFor(parsed({ type: 'google' }));
    assert.equal(settings.issuer, 'https://accounts.google.com');
    assert.deepEqual(settings.presetParams, { access_type: 'offline', prompt: 'consent' });
    assert.deepEqual(settings.scopes, ['openid', 'email', 'profile']);
    assert.equal(settings.useUserinfo, false);
    assert.equal(settings.checkClaims, undefined, 'no hostedDomain: any Google account');
  });

  test("hostedDomain: hd sent as a hint, and the ID token's hd required (case-insensitive)", () => {
    const settings = oidcSettingsFor(parsed({ type: 'google', hostedDomain: 'Example.com' }));
    assert.equal(settings.presetParams.hd, 'example.com');
    assert.equal(settings.checkClaims!({ hd: 'EXAMPLE.com' }), undefined);
    assert.match(settings.checkClaims!({ hd: 'evil.example' })!.reason, /evil\.example is not hostedDomain example\.com/);
    assert.match(settings.checkClaims!({})!.reason, /no Google Workspace domain/);
  });

  test("the operator may replace the prompt (select_account consent), never the gateway's own parameters", () => {
    const settings = oidcSettingsFor(parsed({ type: 'google', authorizationParams: { prompt: 'select_account consent' } }));
    assert.deepEqual(settings.operatorParams, { prompt: 'select_account consent' });
    assert.throws(
      () => createOidcProvider(unchecked({ type: 'google' }, { authorizationParams: { redirect_uri: 'https://evil.example' } })),
      refusedAt('authorizationParams.redirect_uri'),
    );
    assert.doesNotThrow(() => createOidcProvider(parsed({ type: 'google', authorizationParams: { prompt: 'select_account consent' } })));
  });
});

describe('entra', () => {
  test('single tenant: tenant issuer, oid as subject, groups + roles, xms_edov for verification, tid pinned', () => {
    const settings = oidcSettingsFor(parsed({ type: 'entra', tenant: TID }));
    assert.equal(settings.issuer, `https://login.microsoftonline.com/${TID}/v2.0`);
    assert.equal(settings.claims.subject, 'oid');
    assert.deepEqual(settings.claims.groups, ['groups', 'roles']);
    assert.equal(settings.claims.emailVerified, 'xms_edov');
    assert.equal(settings.useUserinfo, false);
    assert.equal(settings.checkClaims!({ tid: TID }), undefined);
    assert.match(settings.checkClaims!({ tid: OTHER_TID })!.reason, /not in allowedTenants/);
    assert.deepEqual(settings.refreshParams, { scope: 'openid profile email offline_access' });
  });

  test('multi-tenant needs allowedTenants; "*" accepts every tenant; the tid check is case-insensitive', () => {
    assert.throws(() => oidcSettingsFor(unchecked({ type: 'entra', tenant: TID }, { tenant: 'common' })), refusedAt('allowedTenants'));
    assert.throws(() => oidcSettingsFor(unchecked({ type: 'entra', tenant: TID }, { tenant: 'organizations' })), refusedAt('allowedTenants'));
    const open = oidcSettingsFor(parsed({ type: 'entra', tenant: 'organizations', allowedTenants: ['*'] }));
    assert.equal(open.checkClaims, undefined);
    const some = oidcSettingsFor(parsed({ type: 'entra', tenant: 'common', allowedTenants: [TID.toUpperCase()] }));
    assert.equal(some.issuer, 'https://login.microsoftonline.com/common/v2.0');
    assert.equal(some.checkClaims!({ tid: TID }), undefined);
    assert.match(some.checkClaims!({})!.reason, /no tid claim/);
  });

  test('scopes: fully qualified, one resource; never a resource parameter (AADSTS9010010)', () => {
    assert.doesNotThrow(() =>
      oidcSettingsFor(parsed({ type: 'entra', tenant: TID, scopes: ['openid', 'offline_access', 'api://1234/mcp.access', 'api://1234/mcp.admin'] })),
    );
    assert.doesNotThrow(() =>
      oidcSettingsFor(parsed({ type: 'entra', tenant: TID, scopes: ['openid', 'offline_access', 'https://management.azure.com/.default'] })),
    );
    const entra = { type: 'entra', tenant: TID };
    assert.throws(() => oidcSettingsFor(unchecked(entra, { scopes: ['openid', 'User.Read'] })), refusedAt('scopes[1]'));
    assert.throws(() => oidcSettingsFor(unchecked(entra, { scopes: ['openid', 'api://a/x', 'api://b/y'] })), refusedAt('scopes'));
    assert.throws(() => oidcSettingsFor(unchecked(entra, { authorizationParams: { resource: 'api://a' } })), refusedAt('authorizationParams.resource'));
    assert.throws(() => createOidcProvider(unchecked(entra, { scopes: ['offline_access'] })), refusedAt('scopes'));
  });

  test('national clouds and stand-ins: the authority replaces the sign-in host', () => {
    const settings = oidcSettingsFor(parsed({ type: 'entra', tenant: TID, authority: 'https://login.microsoftonline.us' }));
    assert.equal(settings.issuer, `https://login.microsoftonline.us/${TID}/v2.0`);
    assert.equal(settings.entraAuthority, settings.issuer);
  });

  test('groups overage is recognised from _claim_names or hasgroups', () => {
    assert.equal(hasGroupsOverage({ _claim_names: { groups: 'src1' } }), true);
    assert.equal(hasGroupsOverage({ hasgroups: true }), true);
    assert.equal(hasGroupsOverage({ groups: ['a'] }), false);
    assert.equal(hasGroupsOverage({ _claim_names: { other: 'x' } }), false);
  });

  test('the schema refuses a tenant that is none of GUID, domain, common/organizations/consumers', () => {
    assert.throws(() => parsed({ type: 'entra', tenant: 'not a tenant' }));
  });
});

describe('every OIDC type has a default provider id and display name', () => {
  for (const [type, extra] of Object.entries({
    oidc: { issuer: 'https://idp.example.com' },
    entra: { tenant: TID },
    google: {},
    okta: { issuer: 'https://a.okta.com' },
    keycloak: { baseUrl: 'https://kc.example.com', realm: 'r' },
    auth0: { domain: 'a.auth0.com' },
    authentik: { baseUrl: 'https://ak.example.com', slug: 's' },
    cognito: { region: 'eu-west-1', userPoolId: 'eu-west-1_X1' },
  })) {
    test(type, () => {
      const config = parsed({ type, ...extra });
      assert.equal(config.id, type);
      assert.ok(config.displayName.length > 0);
      assert.equal(config.clockTolerance, 30);
      const settings = oidcSettingsFor(config);
      assert.ok(settings.scopes.includes('openid'));
    });
  }
});
