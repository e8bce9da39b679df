/**
 * Key paths into the configuration, as messages show them: `servers[0].upstream.url`.
 */

export type PathSegment = string | number;

/** `['servers', 0, 'upstream', 'url']` -> `servers[0].upstream.url`. */
export function formatPath(path: readonly PathSegment[]): string {
  let out = '';
  for (const segment of path) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else if (/^[A-Za-z_$][\w$-]*$/.test(segment)) out += out ? `.${segment}` : segment;
    else out += `[${JSON.stringify(segment)}]`;
  }
  return out;
}

/** True when `path` is `prefix` or lies under it. */
export function startsWith(path: readonly PathSegment[], prefix: readonly PathSegment[]): boolean {
  return prefix.length <= path.length && prefix.every((segment, index) => String(segment) === String(path[index]));
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The value at `path`, or undefined when any step is missing. */
export function valueAt(data: unknown, path: readonly PathSegment[]): unknown {
  let value = data;
  for (const segment of path) {
    if (!isPlainObject(value) && !Array.isArray(value)) return undefined;
    value = (value as Record<PathSegment, unknown>)[segment];
  }
  return value;
}

/** Sets the value at `path`, creating (or replacing non-container) mappings and lists on the way. */
export function setIn(root: Record<string, unknown>, path: readonly PathSegment[], value: unknown): void {
  let container: Record<PathSegment, unknown> = root;
  path.forEach((segment, index) => {
    if (index === path.length - 1) {
      container[segment] = value;
      return;
    }
    const next = path[index + 1];
    let child = container[segment];
    const fits = typeof next === 'number' ? Array.isArray(child) : isPlainObject(child);
    if (!fits) {
      child = typeof next === 'number' ? [] : {};
      container[segment] = child;
    }
    container = child as Record<PathSegment, unknown>;
  });
}
