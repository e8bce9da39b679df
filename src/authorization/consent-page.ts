/**
 * The consent page: the one moment a person decides whether this client may act for them on this MCP
 * server. The client's name and, above all, where the code will be sent (the redirect host) must be
 * impossible to miss: a malicious registration can pick any name, but not its redirect host.
 */
import { html, type SafeHtml } from '../ui/layout.ts';
import type { ProtectedResource } from './provider.ts';

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
  scopes: string[];
  identityProviders: { id: string; displayName: string }[];
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
  const scopeList = view.scopes.length > 0 ? html`<ul class="scopes">${view.scopes.map((scope) => html`<li><code>${scope}</code></li>`)}</ul>` : html`<span>Access to the server's tools</span>`;
  const idpButtons =
    view.identityProviders.length === 1
      ? html`<button class="primary" type="submit" name="decision" value="approve">Allow and sign in</button>`
      : view.identityProviders.map(
          (idp) => html`<button class="primary" type="submit" name="decision" value="approve:${idp.id}">Allow and sign in with ${idp.displayName}</button>`,
        );
  return html`
<h1><strong>${view.clientName}</strong> wants to use <strong>${view.server.name}</strong> as you</h1>
<p>After you sign in, this application will be able to call the MCP server <strong>${view.server.name}</strong> with your identity.</p>
<dl>
  <dt>Application</dt><dd>${view.clientName}</dd>
  <dt>Sends you back to</dt><dd>${view.redirectTarget}</dd>
  ${view.metadataHost ? html`<dt>Identity published by</dt><dd>${view.metadataHost}</dd>` : ''}
  <dt>MCP server</dt><dd>${view.server.resource}</dd>
  <dt>Permissions</dt><dd>${scopeList}</dd>
</dl>
${
  view.onlyLoopbackRedirects && view.metadataHost
    ? html`<p class="warning" role="note">This application only returns to programs on your own computer. Any program running here could claim to be <strong>${view.clientName}</strong>. Continue only if you started this sign-in yourself.</p>`
    : ''
}
<p class="muted">Only allow applications you trust and recognise. You can see the application's id below.</p>
<p class="muted"><code>${view.clientId}</code></p>
<form method="post" action="/interaction/${view.flowId}/decision">
  <input type="hidden" name="csrf" value="${view.csrf}">
  <div class="actions">
    ${idpButtons}
    <button type="submit" name="decision" value="deny">Deny</button>
  </div>
</form>`;
}
