/**
 * A provider built from a configuration the schema would refuse. The schema runs the same rules
 * (src/config/schema/identity-provider-rules.ts), so this reaches only code that builds providers from
 * settings of its own (tests, embedding); `serve` reports the problem earlier, with its line.
 */

import { formatPath } from '../config/load/key-path.ts';
import type { RuleProblem } from '../config/schema/identity-provider-rules.ts';
import { ErrorCode, GatewayError } from '../core/errors.ts';

export class IdpConfigError extends GatewayError {
  /** Key paths relative to the provider entry, with what is wrong at each. */
  readonly problems: readonly RuleProblem[];
  constructor(providerId: string, problems: readonly RuleProblem[]) {
    const list = problems.map((problem) => `${formatPath(problem.path)} ${problem.message}`.trim());
    super(ErrorCode.IDP_CONFIG_INVALID, `identity provider "${providerId}": ${list.join('; ')}`);
    this.name = 'IdpConfigError';
    this.problems = problems;
  }
}

/** Throws when `problems` is not empty. */
export function refuseProblems(providerId: string, problems: readonly RuleProblem[]): void {
  if (problems.length > 0) throw new IdpConfigError(providerId, problems);
}
