/**
 * Who may log in: the same rule block at the gateway level (`access`) and per MCP server
 * (`servers[].access`). A person passes a block when the block has no rules, or when any rule matches.
 * Both the gateway's block and the target server's block must pass. The decisions themselves are pure
 * functions in src/policy/.
 */
import { z } from 'zod';

export const accessRulesSchema = z
  .object({
    emails: z.array(z.string()).default([]).describe('Email addresses allowed (verified email only; compared case-insensitively).'),
    emailDomains: z
      .array(z.string())
      .default([])
      .describe('Email domains allowed, such as `example.com` (verified email only; subdomains do not match).'),
    groups: z.array(z.string()).default([]).describe('Group names or ids allowed (from the IdP\'s groups claim, Entra app roles included).'),
    githubOrgs: z.array(z.string()).default([]).describe('GitHub organisations whose members are allowed.'),
    githubTeams: z.array(z.string()).default([]).describe('GitHub teams allowed, as `org/team-slug`.'),
    tenants: z.array(z.string()).default([]).describe('Microsoft Entra tenant ids (`tid`) allowed.'),
    subjects: z
      .array(z.string())
      .default([])
      .describe('User ids allowed, as `<provider id>:<subject>` (the id the gateway logs).'),
  })
  .default({ emails: [], emailDomains: [], groups: [], githubOrgs: [], githubTeams: [], tenants: [], subjects: [] });

export type AccessRules = z.output<typeof accessRulesSchema>;
