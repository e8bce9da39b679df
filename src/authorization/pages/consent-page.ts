/**
 * The consent page: the one moment a person decides whether this client may act for them on this MCP
 * server. The client's name and, above all, where the code will be sent (the redirect host) must be
 * impossible to miss: a malicious registration can pick any name, but not its redirect host.
 */
import { html, type SafeHtml } from '../../ui/layout.ts';
import type { ProtectedResource } from '../provider.ts';

export interface ConsentView {
  flowId: string;
  csrf: string;
  clientName: string;
  clientId: string;
  /** Where the authorization code goes: host for https, the full scheme for apps, "this computer" for loopback. */
  redirectTarget: string;
  /** CIMD clients: the domain that vouches for the client's identity. */
  metadataHost?: string;
  onlyLoopbackRedirects: boolean;
  server: ProtectedResource;
  scopes: ConsentScope[];
}

/** One requested scope as the person sees it. */
export interface ConsentScope {
  name: string;
  /** The operator's words for it (`servers[].scopeDescriptions`). */
  description?: string;
  /** Not needed to connect (a `toolAccess` scope): shown with a ticked box the person may untick. */
  optional: boolean;
}

function scopeItem(scope: ConsentScope): SafeHtml {
  const words = scope.description ? html` ${scope.description}` : '';
  if (!scope.optional) return html`<li><code>${scope.name}</code>${words}</li>`;
  return html`<li><label><input type="checkbox" name="scope:${scope.name}" value="on" checked> <code>${scope.name}</code>${words}</label></li>`;
}

/** Describes a redirect URI for a person: the host for web apps, the app scheme, or this computer. */
export function describeRedirect(redirectUri: string): string {
  const url = URL.parse(redirectUri);
  if (!url) return redirectUri;
  if (url.protocol === 'https:') return url.host;
  if (url.protocol === 'http:') return `an app on this computer (${url.host})`;
  return `the app that handles ${url.protocol}// links`;
}

export function consentPage(view: ConsentView): SafeHtml {
  const scopeList =
    view.scopes.length > 0
      ? html`<ul class="scopes">${view.scopes.map(scopeItem)}</ul>${
          view.scopes.some((scope) => scope.optional) ? html`<p class="note">Untick a permission to allow less; the application can ask again later.</p>` : ''
        }`
      : html`<span>Use the server's tools</span>`;
  // With several identity providers the choice comes on the next page (sign-in-chooser-page.ts), so
  // consent stays one decision about the application, not about the IdP.
  const approveButton = html`<button class="primary" type="submit" name="decision" value="approve">Allow and sign in</button>`;
  // Who vouches for the name: a CIMD client's name comes from a document on its own domain; a
  // registered (DCR) client chose its name itself, so the redirect target is what identifies it.
  const provenance = view.metadataHost
    ? html`<p class="note">Name and address published by <strong>${view.metadataHost}</strong>.</p>`
    : html`<p class="note">The application chose this name itself; the address above is what identifies it.</p>`;
  return html`
<h1>Allow <strong>${view.clientName}</strong> to use <strong>${view.server.name}</strong> as you?</h1>
<p class="lead">After you sign in, this application will be able to call the MCP server <strong>${view.server.name}</strong> with your identity.</p>
<section class="identity" aria-label="The application asking">
  <p class="label">Application</p>
  <p class="client">${view.clientName}</p>
  <p class="label">Sends you back to</p>
  <p class="target">${view.redirectTarget}</p>
  ${provenance}
</section>
${
  view.onlyLoopbackRedirects && view.metadataHost
    ? html`<div class="notice notice-warning" role="note"><strong class="notice-title">Check that you started this</strong><p>This application only returns to programs on your own computer. Any program running here could claim to be <strong>${view.clientName}</strong>. Continue only if you started this sign-in yourself.</p></div>`
    : ''
}
<form method="post" action="/interaction/${view.flowId}/decision">
<dl class="details">
  <dt>MCP server</dt><dd>${view.server.name}<br><code>${view.server.resource}</code></dd>
  <dt>Permissions</dt><dd>${scopeList}</dd>
</dl>
  <input type="hidden" name="csrf" value="${view.csrf}">
  <div class="actions">
    ${approveButton}
    <button type="submit" name="decision" value="deny">Deny</button>
  </div>
</form>
<p class="muted">Only allow applications you trust and recognise. Application ID: <code>${view.clientId}</code></p>`;
}
