/** How the admin commands print: aligned plain-text tables for people, JSON for scripts (docs/admin.md). */

/** Epoch seconds (or milliseconds, with `unit`) as ISO 8601 without fractions; null stays null. */
export function isoTime(value: number | null, unit: 'seconds' | 'milliseconds' = 'seconds'): string | null {
  if (value === null || !Number.isFinite(value) || value <= 0) return null;
  return new Date(unit === 'seconds' ? value * 1000 : value).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/**
 * Columns padded to their widest cell, two spaces apart, headers first. Cells are single-line: control
 * characters (a client name is chosen by whoever registered the client) are shown escaped, so no value
 * can break the layout or send escape sequences to the operator's terminal.
 */
export function table(headers: readonly string[], rows: ReadonlyArray<ReadonlyArray<string | null>>): string {
  const cells = [headers.map(String), ...rows.map((row) => row.map((cell) => printable(cell ?? '-')))];
  const widths = headers.map((_, column) => Math.max(...cells.map((row) => (row[column] ?? '').length)));
  return `${cells.map((row) => row.map((cell, column) => (column === row.length - 1 ? cell : cell.padEnd(widths[column] ?? 0))).join('  ')).join('\n')}\n`;
}

function printable(value: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point.
  return value.replace(/[\u0000-\u001f\u007f-\u009f]/g, (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

export function json(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}
