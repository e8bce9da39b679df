/**
 * Who may log in: pure decisions over the identity an IdP vouched for and the configured rule blocks.
 *
 * A block with no rules allows everyone the identity providers accept; otherwise any one matching rule
 * allows. The gateway-wide block and the target MCP server's block must both allow. Every decision
 * says which rule matched, or why none did, for the audit log (`login.denied`). Nothing here performs
 * I/O, so the same inputs always give the same decision.
 *
 * Email rules only count a verified address (`emailVerified === true`): an IdP that lets anyone type
 * an unverified address would otherwise let anyone claim `ceo@example.com` (the nOAuth class of bugs).
 */
import { type IdpIdentity, userIdFor } from '../core/identity.ts';
import { normaliseDomain, normaliseEmail } from './email.ts';

/**
 * One rule block as configured (`access`, `servers[].access`); src/config/schema/access.ts validates
 * it, and its output has exactly this shape.
 */
export interface AccessRules {
  emails: string[];
  emailDomains: string[];
  groups: string[];
  githubOrgs: string[];
  githubTeams: string[];
  tenants: string[];
  subjects: string[];
  /** Whom a refused person should ask; not a rule. */
  contact?: string;
}

/** The outcome of one rule block, or of the gateway and server blocks together. */
export interface AccessDecision {
  allowed: boolean;
  /** The rule that allowed, such as `emailDomains:example.com`; absent when nothing matched or there were no rules. */
  rule?: string;
  /** A sentence for the audit log: which rule matched, that there were no rules, or why nothing matched. */
  reason: string;
}

/** The blocks a login to one MCP server must pass. */
export interface AccessPolicy {
  /** The gateway-wide `access`. */
  gateway: AccessRules;
  /** The server's own `servers[].access`. */
  server: AccessRules;
}

/** The rule kinds, in the order they are tried (the first match names the decision). */
const RULE_KINDS = ['subjects', 'emails', 'emailDomains', 'groups', 'tenants', 'githubOrgs', 'githubTeams'] as const;
type RuleKind = (typeof RULE_KINDS)[number];

/** True when the block has at least one rule (a `contact` alone is not a rule). */
export function hasRules(rules: AccessRules): boolean {
  return RULE_KINDS.some((kind) => rules[kind].length > 0);
}

/** GitHub logins, org names and team slugs are case-insensitive; so are GUIDs such as Entra tenant ids. */
function folded(values: readonly string[] | undefined): Set<string> {
  return new Set((values ?? []).map((value) => value.toLowerCase()));
}

/** The first configured value of `kind` that the identity satisfies, or undefined. */
function matchRule(kind: RuleKind, configured: readonly string[], identity: IdpIdentity, providerId: string): string | undefined {
  switch (kind) {
    case 'subjects': {
      // Exact: subjects are opaque ids, and the provider prefix keeps two IdPs' ids apart.
      const userId = userIdFor(providerId, identity.subject);
      return configured.find((value) => value === userId);
    }
    case 'emails': {
      const email = verifiedEmail(identity);
      return email ? configured.find((value) => normaliseEmail(value)?.address === email.address) : undefined;
    }
    case 'emailDomains': {
      // Exact domain only: `example.com` does not admit `mail.example.com`, whose accounts may be run by someone else.
      const email = verifiedEmail(identity);
      return email ? configured.find((value) => normaliseDomain(value) === email.domain) : undefined;
    }
    case 'groups': {
      // Exact: group names and ids are the IdP's own strings (Okta and Keycloak names are case-sensitive).
      const groups = new Set(identity.groups);
      return configured.find((value) => groups.has(value));
    }
    case 'tenants': {
      const tenant = identity.tenantId?.toLowerCase();
      return tenant ? configured.find((value) => value.toLowerCase() === tenant) : undefined;
    }
    case 'githubOrgs': {
      const organizations = folded(identity.organizations);
      return configured.find((value) => organizations.has(value.toLowerCase()));
    }
    case 'githubTeams': {
      const teams = folded(identity.teams);
      return configured.find((value) => teams.has(value.toLowerCase()));
    }
  }
}

function verifiedEmail(identity: IdpIdentity) {
  return identity.emailVerified === true && identity.email ? normaliseEmail(identity.email) : undefined;
}

/** Why no rule matched, naming what the identity lacked (never the identity's own values). */
function noMatchReason(rules: AccessRules, identity: IdpIdentity): string {
  const notes: string[] = [];
  if (rules.emails.length > 0 || rules.emailDomains.length > 0) {
    if (!identity.email) notes.push('the identity has no email address');
    else if (identity.emailVerified !== true) notes.push('the email address is not verified, so email rules do not apply');
    else if (!normaliseEmail(identity.email)) notes.push('the email address is not a plain address');
  }
  if (rules.tenants.length > 0 && !identity.tenantId) notes.push('the identity has no tenant');
  if ((rules.githubOrgs.length > 0 || rules.githubTeams.length > 0) && !identity.organizations && !identity.teams) {
    notes.push('the provider reported no organisations or teams');
  }
  const tried = RULE_KINDS.filter((kind) => rules[kind].length > 0).join(', ');
  return `no rule matched (tried ${tried})${notes.length > 0 ? `: ${notes.join('; ')}` : ''}`;
}

/**
 * One rule block: allowed when it has no rules, or when any rule matches.
 *
 * @param identity what the IdP vouched for
 * @param providerId the configured id of the identity provider (prefixes `subjects`)
 */
export function evaluateRules(identity: IdpIdentity, providerId: string, rules: AccessRules): AccessDecision {
  if (!hasRules(rules)) return { allowed: true, reason: 'no rules configured' };
  for (const kind of RULE_KINDS) {
    const matched = matchRule(kind, rules[kind], identity, providerId);
    if (matched !== undefined) return { allowed: true, rule: `${kind}:${matched}`, reason: `matched ${kind} rule ${matched}` };
  }
  return { allowed: false, reason: noMatchReason(rules, identity) };
}

/**
 * A login to one MCP server: the gateway-wide block and the server's block must both allow. The
 * decision names the block that refused, or the rules that allowed.
 */
export function evaluateAccess(identity: IdpIdentity, providerId: string, policy: AccessPolicy): AccessDecision {
  const gateway = evaluateRules(identity, providerId, policy.gateway);
  if (!gateway.allowed) return { allowed: false, reason: `gateway access: ${gateway.reason}` };
  const server = evaluateRules(identity, providerId, policy.server);
  if (!server.allowed) return { allowed: false, reason: `server access: ${server.reason}` };
  const rule = [gateway.rule && `gateway ${gateway.rule}`, server.rule && `server ${server.rule}`].filter(Boolean).join(', ');
  return { allowed: true, ...(rule ? { rule } : {}), reason: `gateway access: ${gateway.reason}; server access: ${server.reason}` };
}
