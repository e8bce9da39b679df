/**
 * The shell of every page a person sees: server-rendered, no external assets, no scripts, not frameable.
 * Pages build their body from `html` template literals, which escape every interpolated value.
 */
import { createHash } from 'node:crypto';
import type { ServerResponse } from 'node:http';

/** A fragment that is already safe HTML; only `html` and `raw` make one. */
export class SafeHtml {
  readonly value: string;
  constructor(value: string) {
    this.value = value;
  }
  toString(): string {
    return this.value;
  }
}

export function escapeHtml(value: unknown): string {
  return String(value)
    .replaceAll('&', '&amp;')
    .replaceAll('<', '&lt;')
    .replaceAll('>', '&gt;')
    .replaceAll('"', '&quot;')
    .replaceAll("'", '&#39;');
}

function render(value: unknown): string {
  if (value instanceof SafeHtml) return value.value;
  if (Array.isArray(value)) return value.map(render).join('');
  if (value === undefined || value === null || value === false) return '';
  return escapeHtml(value);
}

/** Tagged template: interpolations are escaped unless they are SafeHtml (or arrays of it). */
export function html(strings: TemplateStringsArray, ...values: unknown[]): SafeHtml {
  let out = strings[0] ?? '';
  values.forEach((value, index) => {
    out += render(value) + (strings[index + 1] ?? '');
  });
  return new SafeHtml(out);
}

/** Trusted markup from our own code only (never user input). */
export function raw(value: string): SafeHtml {
  return new SafeHtml(value);
}

const STYLES = `
:root{color-scheme:light dark;--bg:#f6f7f9;--card:#fff;--text:#1b1f24;--muted:#57606a;--border:#d0d7de;--accent:#0b5cd5;--accent-text:#fff;--warn-bg:#fff8e1;--warn-border:#b58100;--danger:#b42318}
@media (prefers-color-scheme:dark){:root{--bg:#0f1115;--card:#181b21;--text:#e6e8eb;--muted:#a3acb9;--border:#343a44;--accent:#5b9cff;--accent-text:#0b0d10;--warn-bg:#2b2410;--warn-border:#d9a520;--danger:#ff8a80}}
*{box-sizing:border-box}
body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:var(--bg);color:var(--text);display:flex;min-height:100vh;align-items:center;justify-content:center;padding:16px}
main{background:var(--card);border:1px solid var(--border);border-radius:12px;max-width:480px;width:100%;padding:28px}
header{display:flex;align-items:center;gap:10px;margin-bottom:16px;color:var(--muted);font-size:14px}
header img{height:28px;width:auto}
h1{font-size:22px;line-height:1.3;margin:0 0 12px}
p{margin:0 0 12px}
dl{margin:16px 0;display:grid;grid-template-columns:max-content 1fr;gap:6px 14px}
dt{color:var(--muted)}
dd{margin:0;word-break:break-word;font-weight:600}
ul.scopes{margin:0;padding-left:20px}
.warning{background:var(--warn-bg);border-left:4px solid var(--warn-border);padding:10px 12px;border-radius:6px;margin:12px 0}
.error{color:var(--danger);font-weight:600}
form{margin:0}
label{display:block;font-weight:600;margin:12px 0 4px}
input[type=text],input[type=password]{width:100%;padding:10px;border:1px solid var(--border);border-radius:8px;font:inherit;background:var(--bg);color:var(--text)}
.actions{display:flex;gap:12px;margin-top:20px;flex-wrap:wrap}
button{font:inherit;font-weight:600;padding:10px 18px;border-radius:8px;border:1px solid var(--border);background:transparent;color:var(--text);cursor:pointer;min-height:44px}
button.primary{background:var(--accent);border-color:var(--accent);color:var(--accent-text)}
button:focus-visible,input:focus-visible,a:focus-visible{outline:3px solid var(--accent);outline-offset:2px}
code{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:14px}
.muted{color:var(--muted);font-size:14px}
`;

const STYLE_HASH = createHash('sha256').update(STYLES).digest('base64');

/**
 * The Content-Security-Policy for every page: no scripts at all, our one inline stylesheet by hash,
 * images only from our origin or the configured logo, and no framing (clickjacking defence for the
 * consent page, RFC 9700 §4.16).
 */
export function pageSecurityHeaders(logoOrigin?: string): Record<string, string> {
  const img = logoOrigin ? `'self' data: ${logoOrigin}` : `'self' data:`;
  return {
    'content-security-policy': `default-src 'none'; style-src 'sha256-${STYLE_HASH}'; img-src ${img}; frame-ancestors 'none'; base-uri 'none'`,
    'x-frame-options': 'DENY',
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    'cache-control': 'no-store',
  };
}

export interface PageBranding {
  productName: string;
  logoUrl?: string;
}

export function renderPage(branding: PageBranding, title: string, body: SafeHtml): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>${escapeHtml(title)} · ${escapeHtml(branding.productName)}</title>
<style>${STYLES}</style>
</head>
<body>
<main>
<header>${branding.logoUrl ? `<img src="${escapeHtml(branding.logoUrl)}" alt="">` : ''}<span>${escapeHtml(branding.productName)}</span></header>
${body.value}
</main>
</body>
</html>`;
}

export function sendPage(res: ServerResponse, status: number, branding: PageBranding, title: string, body: SafeHtml, extraHeaders: Record<string, string | string[]> = {}): void {
  const page = renderPage(branding, title, body);
  const logoOrigin = branding.logoUrl ? URL.parse(branding.logoUrl)?.origin : undefined;
  res.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'content-length': Buffer.byteLength(page),
    ...pageSecurityHeaders(logoOrigin),
    ...extraHeaders,
  });
  res.end(page);
}

/** A calm error page for failures that must not redirect (unknown client, bad redirect URI, expired flow). */
export function sendErrorPage(res: ServerResponse, status: number, branding: PageBranding, title: string, message: string): void {
  sendPage(res, status, branding, title, html`<h1>${title}</h1><p>${message}</p><p class="muted">You can close this window and start the sign-in again from your application.</p>`);
}
