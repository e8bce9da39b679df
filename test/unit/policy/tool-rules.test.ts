/**
 * Tool-level authorization decisions, rule by rule: the rule blocks come from the real configuration
 * schema (defaults and validation are the product's), the identities are what the providers return.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { toolAccessSchema } from '../../../src/config/schema/tool-access.ts';
import type { IdpIdentity } from '../../../src/core/identity.ts';
import { type Caller, globToRegExp, ToolPolicy, VERDICT_ALLOWED, VERDICT_NEEDS_SCOPE, VERDICT_REFUSED } from '../../../src/policy/tool-rules.ts';

function policy(input: unknown): ToolPolicy {
  const parsed = toolAccessSchema.parse(input);
  assert.ok(parsed);
  return new ToolPolicy(parsed);
}

function caller(scopes: string[], identity: Partial<IdpIdentity> = {}): Caller {
  return { identity: { subject: 'u1', email: 'alice@example.com', emailVerified: true, groups: [], ...identity }, providerId: 'corp', scopes: new Set(scopes) };
}

function decide(p: ToolPolicy, kind: 'tool' | 'prompt' | 'resource', name: string, who: Caller) {
  return p.decide(kind, name, p.verdictsFor(who), who.scopes);
}

describe('matching', () => {
  test('the first rule naming the item decides, whatever later rules say', () => {
    const p = policy({ rules: [{ tools: ['delete_*'], access: { groups: ['admins'] } }, { tools: ['*'] }] });
    assert.deepEqual(decide(p, 'tool', 'delete_file', caller([])), { allowed: false, reason: 'access', rule: 0 });
    assert.deepEqual(decide(p, 'tool', 'read_file', caller([])), { allowed: true });
    assert.deepEqual(decide(p, 'tool', 'delete_file', caller([], { groups: ['admins'] })), { allowed: true });
  });

  test('an exact name in a later rule does not win over a glob of an earlier rule', () => {
    const p = policy({ rules: [{ tools: ['get*'], scopes: ['read'] }, { tools: ['get_secret'] }] });
    assert.equal(p.ruleFor('tool', 'get_secret'), 0);
    assert.equal(p.ruleFor('tool', 'getx'), 0);
    assert.equal(p.ruleFor('tool', 'other'), -1);
  });

  test('an exact name in an earlier rule wins over a later glob', () => {
    const p = policy({ rules: [{ tools: ['echo'], scopes: ['x'] }, { tools: ['*'] }] });
    assert.equal(p.ruleFor('tool', 'echo'), 0);
    assert.equal(p.ruleFor('tool', 'echo2'), 1);
  });

  test('tools, prompts and resources are separate name spaces', () => {
    const p = policy({ rules: [{ tools: ['simple'] }, { prompts: ['simple'], scopes: ['p'] }] });
    assert.equal(p.ruleFor('tool', 'simple'), 0);
    assert.equal(p.ruleFor('prompt', 'simple'), 1);
    assert.equal(p.ruleFor('resource', 'simple'), -1);
  });

  test('globs: * spans any characters (slashes too), ? exactly one, everything else is literal', () => {
    assert.ok(globToRegExp('file:///public/*').test('file:///public/a/b.txt'));
    assert.ok(!globToRegExp('file:///public/*').test('file:///private/a'));
    assert.ok(globToRegExp('get_?').test('get_a'));
    assert.ok(!globToRegExp('get_?').test('get_ab'));
    assert.ok(!globToRegExp('a.b').test('axb'), 'a dot is a dot');
    assert.ok(globToRegExp('x(1)+[y]').test('x(1)+[y]'), 'regular-expression characters are literal');
    assert.ok(!globToRegExp('abc').test('xabcx'), 'anchored');
    assert.ok(globToRegExp('get-*').test('get-env'), 'a dash is a dash');
    assert.ok(globToRegExp('a/b\\c^$|{x}').test('a/b\\c^$|{x}'));
  });
});

describe('unmatched items', () => {
  test('are denied by default (the rules are an allow-list)', () => {
    const p = policy({ rules: [{ tools: ['echo'] }] });
    assert.deepEqual(decide(p, 'tool', 'other', caller([])), { allowed: false, reason: 'unmatched' });
    assert.equal(p.allows('prompt', 'any', p.verdictsFor(caller([]))), false);
  });

  test('are allowed with unmatched: allow', () => {
    const p = policy({ unmatched: 'allow', rules: [{ tools: ['admin_*'], access: { emails: ['root@example.com'] } }] });
    assert.deepEqual(decide(p, 'tool', 'echo', caller([])), { allowed: true });
    assert.deepEqual(decide(p, 'tool', 'admin_reset', caller([])), { allowed: false, reason: 'access', rule: 0 });
  });
});

describe('scopes', () => {
  test('a missing scope is a step-up refusal that names exactly the missing scopes', () => {
    const p = policy({ rules: [{ tools: ['write'], scopes: ['files:read', 'files:write'] }] });
    assert.deepEqual(decide(p, 'tool', 'write', caller(['files:read'])), { allowed: false, reason: 'scope', rule: 0, missingScopes: ['files:write'] });
    assert.deepEqual(decide(p, 'tool', 'write', caller(['files:read', 'files:write'])), { allowed: true });
  });

  test('access is judged before scopes: a person the rule refuses gets no step-up offer', () => {
    const p = policy({ rules: [{ tools: ['write'], scopes: ['files:write'], access: { groups: ['editors'] } }] });
    assert.deepEqual(decide(p, 'tool', 'write', caller([])), { allowed: false, reason: 'access', rule: 0 });
    assert.equal(decide(p, 'tool', 'write', caller([], { groups: ['editors'] })).allowed, false);
    assert.deepEqual(decide(p, 'tool', 'write', caller(['files:write'], { groups: ['editors'] })), { allowed: true });
  });

  test('the scopes of every rule, once each, in rule order', () => {
    const p = policy({
      rules: [
        { tools: ['a'], scopes: ['x', 'y'] },
        { tools: ['b'], scopes: ['y', 'z'] },
      ],
    });
    assert.deepEqual(p.scopes(), ['x', 'y', 'z']);
  });
});

describe('access rule types inside a rule', () => {
  const cases: [string, Record<string, unknown>, Partial<IdpIdentity>, Partial<IdpIdentity>][] = [
    ['emails', { emails: ['alice@example.com'] }, {}, { email: 'bob@example.com' }],
    ['emails (unverified does not count)', { emails: ['alice@example.com'] }, {}, { emailVerified: false }],
    ['emailDomains', { emailDomains: ['example.com'] }, {}, { email: 'a@other.org' }],
    ['groups', { groups: ['eng'] }, { groups: ['eng'] }, { groups: ['sales'] }],
    ['githubOrgs', { githubOrgs: ['acme'] }, { organizations: ['ACME'] }, { organizations: ['other'] }],
    ['githubTeams', { githubTeams: ['acme/ops'] }, { teams: ['acme/ops'] }, { teams: ['acme/dev'] }],
    ['tenants', { tenants: ['T1'] }, { tenantId: 't1' }, { tenantId: 't2' }],
    ['subjects', { subjects: ['corp:u1'] }, {}, { subject: 'u2' }],
  ];
  for (const [name, access, allowed, refused] of cases) {
    test(name, () => {
      const p = policy({ rules: [{ tools: ['t'], access }] });
      assert.equal(p.verdictsFor(caller([], allowed))[0], VERDICT_ALLOWED);
      assert.equal(p.verdictsFor(caller([], refused))[0], VERDICT_REFUSED);
    });
  }

  test('verdicts: allowed, needs a scope, refused', () => {
    const p = policy({ rules: [{ tools: ['a'] }, { tools: ['b'], scopes: ['s'] }, { tools: ['c'], access: { groups: ['g'] } }] });
    assert.deepEqual([...p.verdictsFor(caller([]))], [VERDICT_ALLOWED, VERDICT_NEEDS_SCOPE, VERDICT_REFUSED]);
  });
});

describe('configuration', () => {
  test('a rule that names nothing is refused, with its path', () => {
    const result = toolAccessSchema.safeParse({ rules: [{ scopes: ['x'] }] });
    assert.equal(result.success, false);
    assert.deepEqual(result.error?.issues[0]?.path, ['rules', 0]);
  });

  test('an empty rule list is refused', () => {
    assert.equal(toolAccessSchema.safeParse({ rules: [] }).success, false);
  });

  test('a scope with a space is refused', () => {
    assert.equal(toolAccessSchema.safeParse({ rules: [{ tools: ['a'], scopes: ['a b'] }] }).success, false);
  });
});
