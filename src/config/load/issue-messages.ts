/**
 * zod's validation issues as short sentences that read after a key path (`listen.port: expected a
 * number, got a string`). Values are described by kind, never quoted: the value may be a secret.
 */
import type { z } from 'zod';
import { formatPath, type PathSegment, valueAt } from './key-path.ts';

export function describeIssue(issue: z.core.$ZodIssue, path: PathSegment[], data: unknown): string {
  const value = valueAt(data, path);
  switch (issue.code) {
    case 'invalid_type': {
      if (value === undefined) return 'is required';
      return `expected ${TYPE_NAMES[issue.expected] ?? issue.expected}, got ${describeValue(value)}`;
    }
    case 'invalid_union': {
      if ('note' in issue && issue.note === 'No matching discriminator') {
        const options = ('options' in issue && Array.isArray(issue.options) ? issue.options : []).map(String).join(', ');
        return value === undefined ? `is required (one of: ${options})` : `must be one of: ${options}`;
      }
      if (issue.errors.length === 0) return issue.message;
      // Neither form fits: say what each form wanted, so "url or builtin" is visible.
      const forms = issue.errors.map((branch) =>
        branch
          .map((inner) => {
            const innerPath = inner.path.filter((segment): segment is PathSegment => typeof segment !== 'symbol');
            return `${formatPath(innerPath) || 'value'} ${describeIssue(inner, [...path, ...innerPath], data)}`;
          })
          .join(', '),
      );
      return `does not match any allowed form: ${forms.map((form) => `(${form})`).join(' or ')}`;
    }
    case 'invalid_value':
      return issue.values.length === 1 ? `must be ${JSON.stringify(issue.values[0])}` : `must be one of: ${issue.values.map(String).join(', ')}`;
    case 'invalid_format':
      if (issue.format === 'url') return 'must be an absolute URL';
      if (issue.format === 'email') return 'must be an email address';
      if (issue.format === 'regex' && issue.message.startsWith('Invalid string')) return `must match ${issue.pattern ?? 'the required pattern'}`;
      return issue.message;
    case 'too_small':
      if (issue.origin === 'array') return Number(issue.minimum) === 1 ? 'must not be empty' : `must have at least ${issue.minimum} entries`;
      if (issue.origin === 'string') return Number(issue.minimum) === 1 ? 'must not be empty' : `must be at least ${issue.minimum} characters`;
      return issue.inclusive === false ? `must be greater than ${issue.minimum}` : `must be at least ${issue.minimum}`;
    case 'too_big':
      if (issue.origin === 'array') return `must have at most ${issue.maximum} entries`;
      if (issue.origin === 'string') return `must be at most ${issue.maximum} characters`;
      return issue.inclusive === false ? `must be less than ${issue.maximum}` : `must be at most ${issue.maximum}`;
    default:
      return issue.message;
  }
}

const TYPE_NAMES: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  int: 'a whole number',
  boolean: 'true or false',
  array: 'a list',
  object: 'a mapping',
};

/** The kind of a value, never the value itself (it may be a secret). */
function describeValue(value: unknown): string {
  if (value === null) return 'an empty value';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'number' && !Number.isInteger(value)) return 'a fractional number';
  return TYPE_NAMES[typeof value] ?? typeof value;
}
