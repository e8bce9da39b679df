/**
 * Who may log in: the same rule block at the gateway level (`access`) and per MCP server
 * (`servers[].access`). A person passes a block when the block has no rules, or when any rule matches.
 * Both the gateway's block and the target server's block must pass. The decisions themselves are pure
 * functions in src/policy/.
 *
 * Values are checked here, so a rule that could never match (`@example.com`, `*.example.com`,
 * `acme-platform` as a team) is a configuration error rather than a silent lock-out.
 */
import { z } from 'zod';
import type { AccessRules as PolicyAccessRules } from '../../policy/access.ts';
import { normaliseDomain, normaliseEmail } from '../../policy/email.ts';

export const accessRulesSchema = z
  .object({
    emails: z
      .array(z.string().refine((value) => normaliseEmail(value) !== undefined, 'must be an email address such as alice@example.com'))
      .default([])
      .describe('Email addresses allowed (verified email only; compared case-insensitively).'),
    emailDomains: z
      .array(z.string().refine((value) => normaliseDomain(value) !== undefined, 'must be a domain such as example.com (no @, wildcard or trailing dot)'))
      .default([])
      .describe(
        'Email domains allowed, such as `example.com` (verified email only; exact domain, subdomains do not match; international names in either form).',
      ),
    groups: z
      .array(z.string().min(1))
      .default([])
      .describe("Group names or ids allowed (from the IdP's groups claim, Entra app roles included; compared exactly)."),
    githubOrgs: z.array(z.string().min(1)).default([]).describe('GitHub organisations whose members are allowed (case-insensitive).'),
    githubTeams: z
      .array(z.string().regex(/^[^/\s]+\/[^/\s]+$/, 'must be `org/team-slug`'))
      .default([])
      .describe('GitHub teams allowed, as `org/team-slug` (case-insensitive).'),
    tenants: z.array(z.string().min(1)).default([]).describe('Microsoft Entra tenant ids (`tid`) allowed.'),
    subjects: z
      .array(z.string().regex(/^[a-z0-9-]+:.+$/, 'must be `<provider id>:<subject>`'))
      .default([])
      .describe('User ids allowed, as `<provider id>:<subject>` (the id the gateway logs).'),
    contact: z
      .string()
      .min(1)
      .optional()
      .describe(
        'Whom a refused person should ask for access (a name, team or address), shown on the "access denied" page. Not a rule. The server\'s contact wins over the gateway\'s.',
      ),
  })
  .default({ emails: [], emailDomains: [], groups: [], githubOrgs: [], githubTeams: [], tenants: [], subjects: [] }) satisfies z.ZodType<
  PolicyAccessRules,
  unknown
>;
// `satisfies`: what this schema produces is what src/policy/access.ts evaluates; a drift fails to compile.

export type AccessRules = z.output<typeof accessRulesSchema>;
