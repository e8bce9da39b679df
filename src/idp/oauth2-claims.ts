/**
 * Claim mapping for the generic OAuth 2 provider: reads the parts of an identity out of an arbitrary
 * userinfo JSON document by dot paths (`sub`, `data.attributes.email`, `profile.groups`).
 */

/**
 * The value at a dot path, own properties only (a path such as `__proto__.x` or `constructor` finds
 * nothing rather than Object's internals). Numeric segments index arrays (`emails.0.value`).
 */
export function valueAtPath(document: unknown, path: string): unknown {
  let current: unknown = document;
  for (const segment of path.split('.')) {
    if (current === null || typeof current !== 'object') return undefined;
    if (Array.isArray(current)) {
      if (!/^\d+$/.test(segment)) return undefined;
      current = current[Number(segment)];
      continue;
    }
    if (!Object.hasOwn(current, segment)) return undefined;
    current = (current as Record<string, unknown>)[segment];
  }
  return current;
}

/** A stable id as text: strings as they are, safe integers in decimal; anything else is no id. */
export function subjectFrom(value: unknown): string | undefined {
  if (typeof value === 'string' && value.trim() !== '') return value;
  if (typeof value === 'number' && Number.isSafeInteger(value)) return String(value);
  return undefined;
}

/** A boolean, also from the text `"true"`/`"false"` some providers send. */
export function booleanFrom(value: unknown): boolean | undefined {
  if (typeof value === 'boolean') return value;
  if (value === 'true' || value === 'false') return value === 'true';
  return undefined;
}

/**
 * Groups from an array of strings, an array of objects with a `name` (or `displayName`, `id`), or one
 * comma- or space-separated string. Anything else gives no groups.
 */
export function groupsFrom(value: unknown): string[] {
  if (typeof value === 'string') return value.split(/[\s,]+/).filter(Boolean);
  if (!Array.isArray(value)) return [];
  return value.flatMap((item) => {
    if (typeof item === 'string') return item === '' ? [] : [item];
    if (typeof item === 'number' && Number.isFinite(item)) return [String(item)];
    if (item !== null && typeof item === 'object') {
      const record = item as Record<string, unknown>;
      const name = record.name ?? record.displayName ?? record.id;
      return typeof name === 'string' && name !== '' ? [name] : typeof name === 'number' ? [String(name)] : [];
    }
    return [];
  });
}
