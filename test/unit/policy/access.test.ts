/**
 * Allow-list decisions for every rule type: the rule blocks come from the real configuration schema
 * (so defaults and validation are the product's), the identities are what the providers return.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type AccessRules, accessRulesSchema } from '../../../src/config/schema/access.ts';
import { configSchema } from '../../../src/config/schema.ts';
import type { IdpIdentity } from '../../../src/idp/types.ts';
import { evaluateAccess, evaluateRules, hasRules } from '../../../src/policy/access.ts';

function rules(input: Record<string, unknown>): AccessRules {
  return accessRulesSchema.parse(input);
}

function person(overrides: Partial<IdpIdentity> = {}): IdpIdentity {
  return { subject: 'u-123', email: 'alice@example.com', emailVerified: true, groups: [], ...overrides };
}

describe('a rule block', () => {
  test('with no rules allows, and says so', () => {
    const decision = evaluateRules(person({ email: undefined, emailVerified: undefined }), 'corp', rules({}));
    assert.deepEqual(decision, { allowed: true, reason: 'no rules configured' });
    assert.equal(hasRules(rules({ contact: 'it@example.com' })), false, 'a contact is not a rule');
  });

  test('with rules that do not match refuses and names what was tried', () => {
    const decision = evaluateRules(person(), 'corp', rules({ emails: ['bob@example.com'], groups: ['admins'] }));
    assert.equal(decision.allowed, false);
    assert.equal(decision.rule, undefined);
    assert.match(decision.reason, /no rule matched \(tried emails, groups\)/);
  });

  test('any one matching rule allows, and the decision names it', () => {
    const decision = evaluateRules(person({ groups: ['eng'] }), 'corp', rules({ emails: ['bob@example.com'], groups: ['eng'] }));
    assert.deepEqual(decision, { allowed: true, rule: 'groups:eng', reason: 'matched groups rule eng' });
  });
});

describe('emails', () => {
  const block = rules({ emails: ['Alice@Example.com'] });

  test('a verified address matches case-insensitively', () => {
    assert.equal(evaluateRules(person({ email: 'ALICE@example.COM' }), 'corp', block).rule, 'emails:Alice@Example.com');
  });

  test('an unverified or unknown-verification address never matches', () => {
    for (const emailVerified of [false, undefined]) {
      const decision = evaluateRules(person({ emailVerified }), 'corp', block);
      assert.equal(decision.allowed, false, `emailVerified=${emailVerified}`);
      assert.match(decision.reason, /not verified/);
    }
  });

  test('only the whole address matches, not an address that contains it', () => {
    for (const email of ['alice@example.com@evil.com', 'xalice@example.com', 'alice@example.com.evil.com', 'alice@mail.example.com', 'alice@example.com.']) {
      assert.equal(evaluateRules(person({ email }), 'corp', block).allowed, false, email);
    }
  });

  test('no email at all is refused with a reason', () => {
    const decision = evaluateRules(person({ email: undefined }), 'corp', block);
    assert.equal(decision.allowed, false);
    assert.match(decision.reason, /no email address/);
  });
});

describe('emailDomains', () => {
  const block = rules({ emailDomains: ['Example.com', 'bücher.example'] });

  test('a verified address in the domain matches, in any case', () => {
    assert.equal(evaluateRules(person({ email: 'Carol@EXAMPLE.com' }), 'corp', block).rule, 'emailDomains:Example.com');
  });

  test('an unverified address in the domain does not pass', () => {
    const decision = evaluateRules(person({ email: 'mallory@example.com', emailVerified: false }), 'corp', block);
    assert.equal(decision.allowed, false);
    assert.match(decision.reason, /email address is not verified/);
    assert.equal(evaluateRules(person({ email: 'mallory@example.com', emailVerified: undefined }), 'corp', block).allowed, false);
  });

  test('the domain is the exact part after the last @: no subdomains, no suffix tricks', () => {
    for (const email of [
      'eve@example.com@evil.com',
      'eve@sub.example.com',
      'eve@notexample.com',
      'eve@example.com.evil.com',
      'eve@example.com.',
      'eve@example.co',
      '"eve@example.com"@evil.com',
    ]) {
      assert.equal(evaluateRules(person({ email }), 'corp', block).allowed, false, email);
    }
  });

  test('international domains match in Unicode or A-label form', () => {
    assert.equal(evaluateRules(person({ email: 'jörg@xn--bcher-kva.example' }), 'corp', block).rule, 'emailDomains:bücher.example');
    assert.equal(evaluateRules(person({ email: 'jörg@BÜCHER.example' }), 'corp', block).allowed, true);
  });

  test('a configured domain with an @, a wildcard or a trailing dot is a configuration error', () => {
    for (const value of ['@example.com', '*.example.com', 'example.com.', 'example']) {
      assert.equal(accessRulesSchema.safeParse({ emailDomains: [value] }).success, false, value);
    }
  });
});

describe('groups', () => {
  const block = rules({ groups: ['Engineering', '7d3c1b7e-0000-4000-8000-000000000001'] });

  test('a group name or id matches exactly', () => {
    assert.equal(evaluateRules(person({ groups: ['sales', 'Engineering'] }), 'corp', block).rule, 'groups:Engineering');
    assert.equal(evaluateRules(person({ groups: ['7d3c1b7e-0000-4000-8000-000000000001'] }), 'corp', block).allowed, true);
  });

  test('another case or a partial name does not match', () => {
    for (const groups of [['engineering'], ['Engineering-contractors'], [], ['Engineering ']]) {
      assert.equal(evaluateRules(person({ groups }), 'corp', block).allowed, false, JSON.stringify(groups));
    }
  });

  test('groups work without any email', () => {
    assert.equal(evaluateRules(person({ email: undefined, emailVerified: undefined, groups: ['Engineering'] }), 'corp', block).allowed, true);
  });
});

describe('tenants', () => {
  const tenant = '72f988bf-86f1-41af-91ab-2d7cd011db47';
  const block = rules({ tenants: [tenant] });

  test('the Entra tenant id matches (GUIDs compare case-insensitively)', () => {
    assert.equal(evaluateRules(person({ tenantId: tenant }), 'entra', block).rule, `tenants:${tenant}`);
    assert.equal(evaluateRules(person({ tenantId: tenant.toUpperCase() }), 'entra', block).allowed, true);
  });

  test('another tenant, or none, is refused', () => {
    assert.equal(evaluateRules(person({ tenantId: '9188040d-6c67-4c5b-b112-36a304b66dad' }), 'entra', block).allowed, false);
    const none = evaluateRules(person(), 'entra', block);
    assert.equal(none.allowed, false);
    assert.match(none.reason, /no tenant/);
  });
});

describe('githubOrgs and githubTeams', () => {
  test('organisations match case-insensitively (GitHub logins are)', () => {
    const block = rules({ githubOrgs: ['Acme-Corp'] });
    assert.equal(evaluateRules(person({ organizations: ['other', 'acme-corp'] }), 'github', block).rule, 'githubOrgs:Acme-Corp');
    assert.equal(evaluateRules(person({ organizations: ['acme'] }), 'github', block).allowed, false);
    const none = evaluateRules(person(), 'github', block);
    assert.equal(none.allowed, false);
    assert.match(none.reason, /no organisations or teams/);
  });

  test('teams match as org/slug, case-insensitively, and only in that organisation', () => {
    const block = rules({ githubTeams: ['Acme-Corp/Platform'] });
    assert.equal(evaluateRules(person({ teams: ['acme-corp/platform'] }), 'github', block).rule, 'githubTeams:Acme-Corp/Platform');
    for (const teams of [['other-org/platform'], ['acme-corp/platform-admins'], ['platform'], []]) {
      assert.equal(evaluateRules(person({ teams, organizations: ['acme-corp'] }), 'github', block).allowed, false, JSON.stringify(teams));
    }
  });

  test('membership of the organisation alone does not satisfy a team rule', () => {
    assert.equal(evaluateRules(person({ organizations: ['acme-corp'] }), 'github', rules({ githubTeams: ['acme-corp/platform'] })).allowed, false);
  });

  test('a team without its organisation is a configuration error', () => {
    assert.equal(accessRulesSchema.safeParse({ githubTeams: ['platform'] }).success, false);
    assert.equal(accessRulesSchema.safeParse({ githubTeams: ['a/b/c'] }).success, false);
  });
});

describe('subjects', () => {
  const block = rules({ subjects: ['corp:u-123'] });

  test('the subject matches only with its provider id', () => {
    assert.equal(evaluateRules(person(), 'corp', block).rule, 'subjects:corp:u-123');
    assert.equal(evaluateRules(person(), 'github', block).allowed, false, 'the same subject at another IdP is another person');
    assert.equal(evaluateRules(person({ subject: 'U-123' }), 'corp', block).allowed, false, 'subjects are exact');
  });

  test('subjects that contain a colon are compared whole', () => {
    const colon = rules({ subjects: ['corp:tenant:42'] });
    assert.equal(evaluateRules(person({ subject: 'tenant:42' }), 'corp', colon).allowed, true);
    // Provider ids cannot contain a colon (the schema allows [a-z0-9-]), so the prefix is unambiguous.
    assert.equal(evaluateRules(person({ subject: 'tenant' }), 'corp', colon).allowed, false);
    assert.equal(evaluateRules(person({ subject: 'tenant:42:x' }), 'corp', colon).allowed, false);
  });

  test('a subject without a provider id is a configuration error', () => {
    assert.equal(accessRulesSchema.safeParse({ subjects: ['u-123'] }).success, false);
  });
});

describe('gateway and server blocks together', () => {
  const gateway = rules({ emailDomains: ['example.com'] });

  test('both must allow', () => {
    const server = rules({ groups: ['admins'] });
    const allowed = evaluateAccess(person({ groups: ['admins'] }), 'corp', { gateway, server });
    assert.equal(allowed.allowed, true);
    assert.equal(allowed.rule, 'gateway emailDomains:example.com, server groups:admins');

    const byServer = evaluateAccess(person({ groups: ['eng'] }), 'corp', { gateway, server });
    assert.equal(byServer.allowed, false);
    assert.match(byServer.reason, /^server access: no rule matched/);

    const byGateway = evaluateAccess(person({ email: 'eve@evil.com', groups: ['admins'] }), 'corp', { gateway, server });
    assert.equal(byGateway.allowed, false);
    assert.match(byGateway.reason, /^gateway access: no rule matched/);
  });

  test('an empty server block defers to the gateway, and an empty gateway block to the server', () => {
    assert.equal(evaluateAccess(person(), 'corp', { gateway, server: rules({}) }).allowed, true);
    assert.equal(evaluateAccess(person(), 'corp', { gateway: rules({}), server: rules({ emails: ['bob@example.com'] }) }).allowed, false);
    assert.deepEqual(evaluateAccess(person(), 'corp', { gateway: rules({}), server: rules({}) }), {
      allowed: true,
      reason: 'gateway access: no rules configured; server access: no rules configured',
    });
  });

  test('the configuration schema gives every server and the gateway a block, empty by default', () => {
    const config = configSchema.parse({ servers: [{ name: 'a', path: '/a', upstream: { builtin: 'demo' }, access: { groups: ['x'] } }] });
    assert.equal(hasRules(config.access), false);
    assert.deepEqual(config.servers?.[0]?.access.groups, ['x']);
  });
});
