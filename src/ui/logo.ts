/**
 * The operator's logo, read once at start-up and embedded in every page as a `data:` URI: the pages
 * load nothing from elsewhere (no tracking, no mixed content, nothing for a CSP to allow but `data:`).
 * The type comes from the file's bytes, not its name, so a mislabelled file is refused at start-up
 * rather than shown broken.
 */
import { readFileSync, statSync } from 'node:fs';

/** Every page carries the logo, so it stays small (about 87 KiB once base64-encoded). */
export const MAX_LOGO_BYTES = 64 * 1024;

/** The image type of `bytes` by its signature, or undefined when it is not a PNG, JPEG, GIF, WebP or SVG. */
export function sniffImageType(bytes: Buffer): string | undefined {
  if (bytes.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))) return 'image/png';
  if (bytes.subarray(0, 3).equals(Buffer.from([0xff, 0xd8, 0xff]))) return 'image/jpeg';
  if (/^GIF8[79]a/.test(bytes.subarray(0, 6).toString('latin1'))) return 'image/gif';
  if (bytes.subarray(0, 4).toString('latin1') === 'RIFF' && bytes.subarray(8, 12).toString('latin1') === 'WEBP') return 'image/webp';
  // SVG is text: an optional BOM, XML declaration, comments and doctype, then the <svg> root element.
  // (Scripts inside an SVG do not run when it is shown through <img>, and the page CSP forbids them.)
  const text = bytes.toString('utf8').replace(/^\uFEFF/, '');
  const prolog = /^\s*(?:<\?xml[^>]*\?>\s*)?(?:<!--[\s\S]*?-->\s*|<!DOCTYPE[^>]*>\s*)*<svg[\s>]/i;
  if (prolog.test(text)) return 'image/svg+xml';
  return undefined;
}

/**
 * Reads `path` and returns it as a `data:` URI, or a sentence saying what is wrong with it (for the
 * configuration error at `ui.logoFile`).
 */
export function readLogoFile(path: string): { dataUri: string } | { problem: string } {
  let bytes: Buffer;
  try {
    const stat = statSync(path);
    if (!stat.isFile()) return { problem: `${path} is not a file` };
    if (stat.size > MAX_LOGO_BYTES) return { problem: `the logo is ${stat.size} bytes; at most ${MAX_LOGO_BYTES} bytes (64 KiB), since every page embeds it` };
    bytes = readFileSync(path);
  } catch (error) {
    return { problem: `cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? 'error'})` };
  }
  if (bytes.length === 0) return { problem: `${path} is empty` };
  const type = sniffImageType(bytes);
  if (!type) return { problem: 'must be a PNG, JPEG, GIF, WebP or SVG image' };
  return { dataUri: `data:${type};base64,${bytes.toString('base64')}` };
}
