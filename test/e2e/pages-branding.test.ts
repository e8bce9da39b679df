/**
 * Branding of the pages, from configuration to the bytes sent: the `ui` block (logo file embedded as a
 * data: URI, accent colour), its errors with key path and line, and the CSP style hashes matching the
 * stylesheets each page actually carries (a mismatch would leave a person with an unstyled page).
 */

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ConfigError, loadConfig } from '../../src/config/load.ts';
import { contrastRatio, html, pageSecurityHeaders, renderPage } from '../../src/ui/layout.ts';
import { MAX_LOGO_BYTES, sniffImageType } from '../../src/ui/logo.ts';

const PNG_1X1 = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=', 'base64');

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mcpgw-branding-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function write(name: string, contents: string | Buffer): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, contents);
  return path;
}

async function problemsOf(yaml: string): Promise<string> {
  const path = await write(`config-${Math.random().toString(36).slice(2)}.yaml`, yaml);
  try {
    await loadConfig({ path, env: {} });
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    return error.message;
  }
  return assert.fail('expected the configuration to be rejected');
}

/** The sha256 CSP source of every <style> element in a page. */
function styleHashes(page: string): string[] {
  return [...page.matchAll(/<style>([\s\S]*?)<\/style>/g)].map((match) => `'sha256-${createHash('sha256').update(match[1]!).digest('base64')}'`);
}

describe('ui configuration', () => {
  test('a logo file is embedded as a data: URI with the type from its bytes', async () => {
    const logoFile = await write('logo.bin', PNG_1X1);
    const config = await loadConfig({ path: await write('ok.yaml', `ui:\n  productName: Acme\n  logoFile: ${logoFile}\n  accentColor: "#0f766e"\n`), env: {} });
    assert.equal(config.ui.productName, 'Acme');
    assert.equal(config.ui.accentColor, '#0f766e');
    assert.equal(config.ui.logoDataUri, `data:image/png;base64,${PNG_1X1.toString('base64')}`);
  });

  test('no ui block: the default name and no logo', async () => {
    const config = await loadConfig({ env: {} });
    assert.equal(config.ui.productName, 'MCP OAuth Gateway');
    assert.equal(config.ui.logoDataUri, undefined);
  });

  test('a missing, non-image or oversized logo is an error at ui.logoFile with its line', async () => {
    assert.match(await problemsOf(`ui:\n  logoFile: ${join(dir, 'absent.png')}\n`), /ui\.logoFile \(line 2\): cannot read .*absent\.png \(ENOENT\)/);
    const text = await write('logo.png', 'this is not an image');
    assert.match(await problemsOf(`ui:\n  logoFile: ${text}\n`), /ui\.logoFile \(line 2\): must be a PNG, JPEG, GIF, WebP or SVG image/);
    const huge = await write('huge.png', Buffer.concat([PNG_1X1, Buffer.alloc(MAX_LOGO_BYTES)]));
    assert.match(await problemsOf(`ui:\n  logoFile: ${huge}\n`), /ui\.logoFile \(line 2\): the logo is \d+ bytes; at most 65536 bytes/);
  });

  test('an accent colour that is not #rrggbb, an empty product name and the old remote logoUrl are errors', async () => {
    const report = await problemsOf('ui:\n  productName: "  "\n  accentColor: blue\n  logoUrl: https://cdn.example.com/logo.png\n');
    assert.match(report, /ui\.productName \(line 2\): must not be empty/);
    assert.match(report, /ui\.accentColor \(line 3\): must be a hex colour such as #1d4ed8/);
    assert.match(report, /ui\.logoUrl \(line 4\)/);
  });

  test('image types are recognised by their bytes', () => {
    assert.equal(sniffImageType(PNG_1X1), 'image/png');
    assert.equal(sniffImageType(Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0, 0x10])), 'image/jpeg');
    assert.equal(sniffImageType(Buffer.from('GIF89a\x01\x00', 'latin1')), 'image/gif');
    assert.equal(sniffImageType(Buffer.concat([Buffer.from('RIFF'), Buffer.alloc(4), Buffer.from('WEBPVP8 ')])), 'image/webp');
    assert.equal(sniffImageType(Buffer.from('\uFEFF<?xml version="1.0"?>\n<!-- logo -->\n<svg xmlns="http://www.w3.org/2000/svg"/>')), 'image/svg+xml');
    assert.equal(sniffImageType(Buffer.from('<html><svg></svg></html>')), undefined, 'an HTML page is not an SVG');
    assert.equal(sniffImageType(Buffer.from('%PDF-1.7')), undefined);
  });
});

describe('page stylesheets and CSP', () => {
  test('every <style> in a page is allowed by the CSP hash list, with and without an accent colour', () => {
    for (const branding of [{ productName: 'Plain' }, { productName: 'Teal', accentColor: '#0f766e' }]) {
      const page = renderPage(branding, 'Title', html`<h1>Hello</h1>`);
      const csp = pageSecurityHeaders(branding)['content-security-policy']!;
      const hashes = styleHashes(page);
      assert.equal(hashes.length, branding.accentColor ? 2 : 1);
      for (const hash of hashes) assert.ok(csp.includes(hash), `${hash} in ${csp}`);
      assert.doesNotMatch(csp, /unsafe-inline|script-src/);
      assert.match(csp, /img-src data:;/);
      assert.doesNotMatch(page, /<script|style="/, 'no scripts, no style attributes (the CSP would block them)');
    }
  });

  test('the text on the accent colour is black or white, whichever reaches 4.5:1', () => {
    for (const accent of ['#ffff00', '#0f766e', '#000080', '#ff6600', '#777777', '#1d4ed8']) {
      const page = renderPage({ productName: 'x', accentColor: accent }, 't', html``);
      // The accent stylesheet comes last and overrides the defaults of the base one.
      const text = [...page.matchAll(/--accent-text:(#[0-9a-f]{6})/g)].at(-1)?.[1];
      assert.ok(text && page.lastIndexOf(`--accent:${accent}`) > page.indexOf('--accent-text:#fff'), accent);
      assert.ok(contrastRatio(accent, text) >= 4.5, `${accent} on ${text}: ${contrastRatio(accent, text).toFixed(2)}`);
    }
  });

  test('the product name and logo are escaped into the page', () => {
    const page = renderPage({ productName: '<b>Acme</b>', logoDataUri: 'data:image/png;base64,AAAA"onerror="x' }, 'T', html``);
    assert.ok(page.includes('&lt;b&gt;Acme&lt;/b&gt;'));
    assert.ok(!page.includes('"onerror="'));
  });
});
