/**
 * Who may use which tool, prompt and resource of one MCP server (`servers[].toolAccess`): pure
 * decisions over the caller's token scopes and identity, with no I/O (docs/policy.md).
 *
 * Rules are tried in order and the first rule whose pattern names the item decides, like a firewall:
 * the item is allowed when the token holds every scope of that rule and the person passes the rule's
 * `access` block (the same rule types as `access`, src/policy/access.ts). An item no rule names gets
 * `unmatched` (deny by default: a rule set is an allow-list).
 *
 * A refusal says whether a wider token would help: when the rule's `access` block lets the person in
 * and only scopes are missing, the gateway answers with the MCP step-up challenge (403
 * `insufficient_scope`, MCP Authorization 2026-07-28, "Scope Challenge Handling"); when the person is
 * not allowed at all, no scope could change that and the answer is a JSON-RPC error.
 *
 * Cost on the hot path: the rule that names an item is looked up once per name and remembered, and a
 * caller's verdict for every rule is computed once per token (`verdictsFor`), so a decision is two
 * map lookups and an array read.
 */
import type { IdpIdentity } from '../core/identity.ts';
import { type AccessRules, evaluateRules, hasRules } from './access.ts';

/** The three kinds of named item a rule can cover; `resource` names are URIs (or URI templates). */
export type ItemKind = 'tool' | 'prompt' | 'resource';

/** One rule as configured (src/config/schema/tool-access.ts produces exactly this shape). */
export interface ToolRule {
  /** Tool names or glob patterns (`*` any run of characters, `?` one character). */
  tools: string[];
  prompts: string[];
  /** Resource URIs or glob patterns; also matched against resource templates' `uriTemplate`. */
  resources: string[];
  /** Scopes the token must hold (every one). */
  scopes: string[];
  /** Who may use the items; no rules in the block: everyone the server's login rules let in. */
  access: AccessRules;
}

export interface ToolAccessRules {
  /** What happens to an item no rule names. */
  unmatched: 'allow' | 'deny';
  rules: ToolRule[];
}

/** The caller, as the token check knows it. */
export interface Caller {
  identity: IdpIdentity;
  /** The identity provider's configured id (prefixes `subjects` rules). */
  providerId: string;
  scopes: ReadonlySet<string>;
}

/** A caller's verdict for each rule, by rule index. */
export type Verdicts = Uint8Array;
export const VERDICT_ALLOWED = 0;
/** The person passes the rule's `access` block, but the token lacks one of its scopes. */
export const VERDICT_NEEDS_SCOPE = 1;
/** The person does not pass the rule's `access` block: no token of theirs could use the item. */
export const VERDICT_REFUSED = 2;

export type ItemDecision =
  | { readonly allowed: true }
  | { readonly allowed: false; readonly reason: 'scope'; readonly rule: number; readonly missingScopes: readonly string[] }
  | { readonly allowed: false; readonly reason: 'access'; readonly rule: number }
  | { readonly allowed: false; readonly reason: 'unmatched' };

const ALLOWED: ItemDecision = Object.freeze({ allowed: true });
const UNMATCHED: ItemDecision = Object.freeze({ allowed: false, reason: 'unmatched' });

/** Names remembered per kind before the memo starts over (tool names are a small, fixed set in practice). */
const MEMO_LIMIT = 4096;
const NO_RULE = -1;

/** One kind's patterns: exact names by first rule, then the globs in rule order. */
interface KindIndex {
  exact: Map<string, number>;
  globs: { rule: number; pattern: RegExp }[];
  memo: Map<string, number>;
}

/** A `toolAccess` block compiled once at start-up. */
export class ToolPolicy {
  readonly rules: readonly ToolRule[];
  readonly unmatched: 'allow' | 'deny';
  readonly #kinds: Record<ItemKind, KindIndex>;
  /** Decisions that only depend on the verdict, prebuilt so a decision allocates nothing. */
  readonly #refusals: ItemDecision[];

  constructor(config: ToolAccessRules) {
    this.rules = config.rules;
    this.unmatched = config.unmatched;
    this.#kinds = {
      tool: indexKind(config.rules, (rule) => rule.tools),
      prompt: indexKind(config.rules, (rule) => rule.prompts),
      resource: indexKind(config.rules, (rule) => rule.resources),
    };
    this.#refusals = config.rules.map((_rule, index) => Object.freeze({ allowed: false as const, reason: 'access' as const, rule: index }));
  }

  /** The index of the first rule naming `name`, or -1. */
  ruleFor(kind: ItemKind, name: string): number {
    const index = this.#kinds[kind];
    const known = index.memo.get(name);
    if (known !== undefined) return known;
    let rule = index.exact.get(name) ?? NO_RULE;
    for (const glob of index.globs) {
      if (rule !== NO_RULE && glob.rule > rule) break;
      if (glob.pattern.test(name)) {
        rule = glob.rule;
        break;
      }
    }
    if (index.memo.size >= MEMO_LIMIT) index.memo.clear();
    index.memo.set(name, rule);
    return rule;
  }

  /** The caller's verdict for every rule; compute once per token and keep it (it only depends on the token). */
  verdictsFor(caller: Caller): Verdicts {
    const verdicts = new Uint8Array(this.rules.length);
    this.rules.forEach((rule, index) => {
      if (hasRules(rule.access) && !evaluateRules(caller.identity, caller.providerId, rule.access).allowed) verdicts[index] = VERDICT_REFUSED;
      else if (!rule.scopes.every((scope) => caller.scopes.has(scope))) verdicts[index] = VERDICT_NEEDS_SCOPE;
    });
    return verdicts;
  }

  /** May the caller whose verdicts these are use this item? */
  decide(kind: ItemKind, name: string, verdicts: Verdicts, scopes: ReadonlySet<string>): ItemDecision {
    const rule = this.ruleFor(kind, name);
    if (rule === NO_RULE) return this.unmatched === 'allow' ? ALLOWED : UNMATCHED;
    const verdict = verdicts[rule];
    if (verdict === VERDICT_ALLOWED) return ALLOWED;
    if (verdict === VERDICT_REFUSED) return this.#refusals[rule] as ItemDecision;
    const missingScopes = (this.rules[rule] as ToolRule).scopes.filter((scope) => !scopes.has(scope));
    return { allowed: false, reason: 'scope', rule, missingScopes };
  }

  /** True when the item may be used: the test list filtering runs per entry. */
  allows(kind: ItemKind, name: string, verdicts: Verdicts): boolean {
    const rule = this.ruleFor(kind, name);
    if (rule === NO_RULE) return this.unmatched === 'allow';
    return verdicts[rule] === VERDICT_ALLOWED;
  }

  /** Every scope some rule asks for, in rule order without repeats (grantable for the server). */
  scopes(): string[] {
    return [...new Set(this.rules.flatMap((rule) => rule.scopes))];
  }
}

function indexKind(rules: readonly ToolRule[], patternsOf: (rule: ToolRule) => readonly string[]): KindIndex {
  const exact = new Map<string, number>();
  const globs: KindIndex['globs'] = [];
  rules.forEach((rule, index) => {
    for (const pattern of patternsOf(rule)) {
      if (isGlob(pattern)) globs.push({ rule: index, pattern: globToRegExp(pattern) });
      else if (!exact.has(pattern)) exact.set(pattern, index);
    }
  });
  return { exact, globs, memo: new Map() };
}

export function isGlob(pattern: string): boolean {
  return pattern.includes('*') || pattern.includes('?');
}

/**
 * `*` matches any run of characters (slashes included: tool names have no path structure, and a
 * resource pattern `file:///public/*` is meant to cover everything below), `?` exactly one; every other
 * character stands for itself. Anchored at both ends.
 */
export function globToRegExp(pattern: string): RegExp {
  let source = '';
  for (const char of pattern) {
    if (char === '*') source += '[\\s\\S]*';
    else if (char === '?') source += '[\\s\\S]';
    // Unicode-mode patterns allow escaping only syntax characters (and `/`), so `-` stays as it is.
    else source += char.replace(/[\\^$.|+()[\]{}/]/g, '\\$&');
  }
  return new RegExp(`^${source}$`, 'u');
}
