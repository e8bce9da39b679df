/**
 * The shell of every page a person sees: server-rendered, no external assets, no scripts, not frameable.
 * Pages build their body from `html` template literals, which escape every interpolated value.
 *
 * Class vocabulary for page bodies (all styled here, nothing else is needed):
 * - `h1` once per page; `p.lead` the sentence under it; `.muted` secondary text.
 * - `.notice` boxes: `.notice-warning` (caution, e.g. loopback-only clients), `.notice-error` (refusals),
 *   `.notice-info`; put `role="alert"` on one that reports the result of what the person just did.
 * - `dl.details` label/value pairs (stacked on phones); `ul.scopes` a list of scopes in `code`.
 * - `.actions` a row of buttons (stacked full width on phones); `button.primary` the main action,
 *   plain `button` or `button.secondary` the others; `a.button` styles a link like a button.
 * - `ul.choices` (or the chooser's `ul.sign-in-chooser`) a vertical list of full-width buttons, one per
 *   option; the denied page's `.signed-in-as` is a boxed account line.
 * - Forms: `label[for]` + `input`; `p.error[role=alert]` for a form-level error.
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
  return String(value).replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;').replaceAll('"', '&quot;').replaceAll("'", '&#39;');
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

/*
 * Colours meet WCAG 2.2 AA: body and muted text >= 4.5:1 on both the card and the page background,
 * in light and dark schemes (the Chromium page test measures the rendered result). System fonts only.
 */
const STYLES = `
:root{color-scheme:light dark;--bg:#eef1f5;--card:#fff;--text:#151a21;--muted:#4a5563;--border:#cfd6df;--subtle:#f5f7fa;--accent:#1d4ed8;--accent-text:#fff;--focus:#1d4ed8;--warn-bg:#fff6dc;--warn-border:#b45309;--warn-text:#6b3a06;--danger:#b42318;--danger-bg:#fdecea;--info-bg:#e8f0fe;--info-border:#1d4ed8}
@media (prefers-color-scheme:dark){:root{--bg:#0e1116;--card:#171b22;--text:#e7eaee;--muted:#aab3bf;--border:#343b46;--subtle:#1e232b;--accent:#8ab4ff;--accent-text:#0b0d10;--focus:#8ab4ff;--warn-bg:#2e2410;--warn-border:#f0a92a;--warn-text:#fde4a6;--danger:#ff9b91;--danger-bg:#2e1614;--info-bg:#16223a;--info-border:#8ab4ff}}
*,*::before,*::after{box-sizing:border-box}
html{-webkit-text-size-adjust:100%;text-size-adjust:100%}
body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,"Noto Sans","DejaVu Sans",sans-serif;background:var(--bg);color:var(--text);overflow-wrap:anywhere}
.page{min-height:100vh;display:flex;flex-direction:column;align-items:center;justify-content:center;gap:16px;padding:32px 16px}
.brand{width:100%;max-width:34rem;display:flex;align-items:center;gap:10px;color:var(--text);font-weight:600;font-size:15px}
.brand img{height:32px;width:auto;max-width:10rem;object-fit:contain}
main{background:var(--card);border:1px solid var(--border);border-radius:14px;max-width:34rem;width:100%;padding:32px;box-shadow:0 1px 2px rgba(16,24,40,.06),0 8px 24px rgba(16,24,40,.06)}
h1{font-size:1.5rem;line-height:1.3;margin:0 0 12px;letter-spacing:-.01em}
h2{font-size:1.05rem;margin:20px 0 8px}
p{margin:0 0 12px}
.lead{font-size:1.05rem}
main>:last-child{margin-bottom:0}
form+.muted{margin-top:20px}
.muted{color:var(--muted);font-size:.9rem}
code,.mono{font-family:ui-monospace,"SF Mono",Menlo,Consolas,"DejaVu Sans Mono",monospace;font-size:.9em}
.identity{border:1px solid var(--border);background:var(--subtle);border-radius:10px;padding:16px;margin:16px 0}
.identity .label{color:var(--muted);font-size:.85rem;font-weight:600;margin:0 0 2px;text-transform:uppercase;letter-spacing:.04em}
.identity .client{font-size:1.35rem;font-weight:700;margin:0 0 14px;line-height:1.25}
.identity .target{font-size:1.2rem;font-weight:700;margin:0;padding:6px 10px;border-radius:6px;background:var(--card);border:1px solid var(--border);display:inline-block;max-width:100%}
.identity .note{margin:10px 0 0;color:var(--muted);font-size:.9rem}
dl.details{margin:16px 0;display:grid;grid-template-columns:max-content 1fr;gap:8px 16px}
dl.details dt{color:var(--muted)}
dl.details dd{margin:0;font-weight:600;min-width:0}
ul.scopes{margin:0;padding:0;list-style:none;display:flex;flex-wrap:wrap;gap:6px}
ul.scopes li{border:1px solid var(--border);border-radius:999px;padding:0 10px;font-weight:600;background:var(--subtle)}
.notice{border:1px solid var(--border);border-left-width:5px;border-radius:8px;padding:12px 14px;margin:16px 0}
.notice>:last-child{margin-bottom:0}
.notice-warning{background:var(--warn-bg);border-color:var(--warn-border);color:var(--warn-text)}
.notice-error{background:var(--danger-bg);border-color:var(--danger);color:var(--text)}
.notice-info{background:var(--info-bg);border-color:var(--info-border)}
.notice-title{font-weight:700;display:block;margin-bottom:2px}
.error{color:var(--danger);font-weight:600;background:var(--danger-bg);border-left:5px solid var(--danger);border-radius:8px;padding:10px 12px;margin:12px 0}
form{margin:0}
label{display:block;font-weight:600;margin:16px 0 6px}
input[type=text],input[type=password],input[type=email]{display:block;width:100%;min-height:44px;padding:10px 12px;border:1px solid var(--muted);border-radius:8px;font:inherit;background:var(--card);color:var(--text)}
input[aria-invalid=true]{border-color:var(--danger);border-width:2px}
.actions{display:flex;gap:12px;margin-top:24px;flex-wrap:wrap}
button,a.button{display:inline-flex;align-items:center;justify-content:center;font:inherit;font-weight:600;text-decoration:none;padding:10px 20px;border-radius:8px;border:1px solid var(--muted);background:var(--card);color:var(--text);cursor:pointer;min-height:44px;text-align:center}
button:hover,a.button:hover{background:var(--subtle)}
button.primary{background:var(--accent);border-color:var(--accent);color:var(--accent-text)}
button.primary:hover{filter:brightness(1.08)}
ul.choices,ul.sign-in-chooser{list-style:none;margin:20px 0 0;padding:0;display:grid;gap:10px}
ul.choices button,ul.choices a.button,.sign-in-chooser button{width:100%}
.sign-in-chooser+form .actions,.cancel .actions{margin-top:12px}
.signed-in-as{border:1px solid var(--border);background:var(--subtle);border-radius:10px;padding:12px 14px}
.access-denied{margin:16px 0}
.contact{color:var(--text)}
a{color:inherit;text-decoration-thickness:1px;text-underline-offset:2px}
:focus-visible{outline:3px solid var(--focus);outline-offset:2px}
@media (max-width:480px){.page{justify-content:flex-start;padding:16px 12px}main{padding:20px 18px;border-radius:12px}h1{font-size:1.3rem}dl.details{grid-template-columns:1fr;gap:2px}dl.details dd{margin-bottom:8px}.actions{flex-direction:column}.actions button,.actions a.button{width:100%}}
@media (prefers-reduced-motion:reduce){*{transition:none!important}}
@media (forced-colors:active){button.primary{border:2px solid ButtonText}.notice{border:2px solid CanvasText}}
`;

function sha256(text: string): string {
  return `'sha256-${createHash('sha256').update(text).digest('base64')}'`;
}

const STYLE_HASH = sha256(STYLES);

/** What each page shows of the operator's branding (the `ui` configuration block, resolved). */
export interface PageBranding {
  productName: string;
  /** The logo as a `data:` URI (read from `ui.logoFile` at start-up), so the page loads nothing remote. */
  logoDataUri?: string;
  /** `#rrggbb` for primary buttons; the text colour on it is chosen for contrast. */
  accentColor?: string;
}

/**
 * The per-branding stylesheet: only the accent colour, in a second `<style>` with its own hash, so the
 * base stylesheet (and its hash) never changes. The text on the accent is black or white, whichever
 * contrasts more (one of them always reaches 4.5:1).
 */
function accentStyles(branding: PageBranding | undefined): string | undefined {
  const accent = branding?.accentColor;
  if (!accent || !/^#[0-9a-fA-F]{6}$/.test(accent)) return undefined;
  const text = contrastRatio(accent, '#ffffff') >= contrastRatio(accent, '#000000') ? '#ffffff' : '#000000';
  return `:root{--accent:${accent};--accent-text:${text}}`;
}

/** WCAG 2.2 relative luminance of `#rrggbb`. */
function luminance(hex: string): number {
  const channel = (offset: number) => {
    const value = parseInt(hex.slice(offset, offset + 2), 16) / 255;
    return value <= 0.04045 ? value / 12.92 : ((value + 0.055) / 1.055) ** 2.4;
  };
  return 0.2126 * channel(1) + 0.7152 * channel(3) + 0.0722 * channel(5);
}

/** WCAG 2.2 contrast ratio of two `#rrggbb` colours (1 to 21). */
export function contrastRatio(a: string, b: string): number {
  const [light, dark] = [luminance(a), luminance(b)].sort((x, y) => y - x) as [number, number];
  return (light + 0.05) / (dark + 0.05);
}

/**
 * The security headers of every page:
 * - CSP: no scripts at all (`default-src 'none'`), only our own stylesheets by hash, images only as
 *   `data:` (the embedded logo), no `<base>` tricks. No `form-action`: Chromium applies it to the
 *   redirects that follow a form post, which would block the code's way back to an app's own scheme;
 * - not frameable: `frame-ancestors 'none'` plus `X-Frame-Options: DENY` for browsers without CSP 2
 *   (clickjacking of the consent button, RFC 9700 §4.16);
 * - `Referrer-Policy: no-referrer`: the consent URL carries the interaction id, which must not leak to
 *   the IdP or anywhere else through the Referer header;
 * - `Cache-Control: no-store`: the pages carry CSRF tokens and per-person details;
 * - `X-Content-Type-Options: nosniff`.
 *
 * `branding` adds the hash of its accent stylesheet; a string argument (a logo origin, from when logos
 * were remote URLs) is accepted and ignored, as remote images are no longer allowed.
 */
export function pageSecurityHeaders(branding?: PageBranding | string): Record<string, string> {
  const accent = typeof branding === 'object' ? accentStyles(branding) : undefined;
  const styleSources = accent ? `${STYLE_HASH} ${sha256(accent)}` : STYLE_HASH;
  return {
    'content-security-policy': `default-src 'none'; style-src ${styleSources}; img-src data:; frame-ancestors 'none'; base-uri 'none'`,
    'x-frame-options': 'DENY',
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    'cache-control': 'no-store',
  };
}

export function renderPage(branding: PageBranding, title: string, body: SafeHtml): string {
  const accent = accentStyles(branding);
  // The favicon is the logo, or an empty data: URI so the browser does not request /favicon.ico.
  const icon = branding.logoDataUri ?? 'data:,';
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<meta name="robots" content="noindex, nofollow">
<title>${escapeHtml(title)} · ${escapeHtml(branding.productName)}</title>
<link rel="icon" href="${escapeHtml(icon)}">
<style>${STYLES}</style>${accent ? `\n<style>${accent}</style>` : ''}
</head>
<body>
<div class="page">
<header class="brand">${branding.logoDataUri ? `<img src="${escapeHtml(branding.logoDataUri)}" alt="">` : ''}<span>${escapeHtml(branding.productName)}</span></header>
<main>
${body.value}
</main>
</div>
</body>
</html>`;
}

export function sendPage(
  res: ServerResponse,
  status: number,
  branding: PageBranding,
  title: string,
  body: SafeHtml,
  extraHeaders: Record<string, string | string[]> = {},
): void {
  const page = renderPage(branding, title, body);
  res.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'content-length': Buffer.byteLength(page),
    ...pageSecurityHeaders(branding),
    ...extraHeaders,
  });
  res.end(page);
}

/** A calm error page for failures that must not redirect (unknown client, bad redirect URI, expired flow). */
export function sendErrorPage(res: ServerResponse, status: number, branding: PageBranding, title: string, message: string): void {
  sendPage(res, status, branding, title, errorPageBody(title, message));
}

/** The body of an error page: what happened, and what the person can do now. */
export function errorPageBody(title: string, message: string): SafeHtml {
  return html`<h1>${title}</h1>
<p class="lead">${message}</p>
<p class="muted">You can close this window and start the sign-in again from your application.</p>`;
}
