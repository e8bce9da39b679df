/**
 * Small helpers for text read from files named in the configuration (secrets, key lists).
 */

/** Non-empty trimmed lines: a list file holds one item per line (blank lines and CRLF allowed). */
export function splitLines(text: string): string[] {
  return text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== '');
}

/** The reason a read failed, by its code (`ENOENT`), never its message (which repeats the path). */
export function readFailure(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : 'read failed';
}
