/**
 * Matcher for `assert.throws`: an identity provider refused its configuration (by code, never by
 * message) and named the key at fault.
 */
import { formatPath } from '../../../src/config/load/key-path.ts';
import { ErrorCode, hasErrorCode } from '../../../src/core/errors.ts';
import type { IdpConfigError } from '../../../src/idp/config-error.ts';

export function refusedAt(keyPath: string): (error: unknown) => boolean {
  return (error) =>
    hasErrorCode(error, ErrorCode.IDP_CONFIG_INVALID) && (error as IdpConfigError).problems.some((problem) => formatPath(problem.path) === keyPath);
}
