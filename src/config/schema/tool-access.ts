/**
 * `servers[].toolAccess`: which tools, prompts and resources of one MCP server a token may use, by the
 * scopes it holds and the person behind it (the same rule types as `access`). Decided by
 * src/policy/tool-rules.ts; the worked examples are in docs/policy.md.
 *
 * `servers[].scopeDescriptions`: the words the consent page shows for a scope, so a person knows
 * what they allow (and what they decline when they untick a scope a rule asks for).
 */
import { z } from 'zod';
import type { ToolAccessRules } from '../../policy/tool-rules.ts';
import { accessRulesSchema } from './access.ts';

/** RFC 6749 §3.3 scope-token characters, as for `servers[].scopes`. */
export const scopeToken = z.string().regex(/^[\x21\x23-\x5B\x5D-\x7E]+$/, 'a scope token (visible ASCII, no space, `"` or `\\`)');

const patterns = (what: string) =>
  z.array(z.string().min(1)).default([]).describe(`${what} this rule covers: exact names or glob patterns (\`*\` any run of characters, \`?\` one character).`);

export const toolRuleSchema = z
  .object({
    tools: patterns('Tool names'),
    prompts: patterns('Prompt names'),
    resources: patterns('Resource URIs (also matched against resource templates)'),
    scopes: z
      .array(scopeToken)
      .default([])
      .describe(
        'Scopes the token must hold to use these items. They become grantable for this server without being needed to connect: a client that lacks one gets the MCP step-up challenge (403 `insufficient_scope`) and can ask for it.',
      ),
    access: accessRulesSchema.describe('Who may use these items (any one rule matches; no rules: everyone the server lets in).'),
  })
  .refine((rule) => rule.tools.length + rule.prompts.length + rule.resources.length > 0, 'a rule must name at least one tool, prompt or resource');

export const toolAccessSchema = z
  .object({
    unmatched: z
      .enum(['allow', 'deny'])
      .default('deny')
      .describe('What happens to a tool, prompt or resource no rule names: `deny` (default; the rules are an allow-list) or `allow`.'),
    rules: z.array(toolRuleSchema).min(1).describe('Tried in order; the first rule whose pattern names the item decides whether it may be used.'),
  })
  .optional()
  .describe(
    'Tool-level authorization: which tools, prompts and resources a token may use. Lists are filtered, a forbidden call refused (docs/policy.md). Absent: every item for everyone who may log in.',
  ) satisfies z.ZodType<ToolAccessRules | undefined, unknown>;

export const scopeDescriptionsSchema = z
  .record(scopeToken, z.string().min(1).max(200))
  .default({})
  .describe('What each scope allows, in words shown on the consent page (for `scopes` and the scopes of `toolAccess` rules).');
