/**
 * The page a person sees when the IdP signed them in but the gateway's access rules do not let this
 * account use the MCP server: who they are signed in as, what they may not use, whom to ask, and one
 * button that returns to the application with `access_denied` (so the client stops waiting).
 *
 * Class names for styling: `access-denied` (the explanation), `signed-in-as` (the account line),
 * `contact` (whom to ask), `return` (the form with the button back to the application).
 */
import { html, type SafeHtml } from '../../ui/layout.ts';

export interface DeniedView {
  flowId: string;
  csrf: string;
  clientName: string;
  serverName: string;
  /** The account as the person knows it: email, else name, else the IdP's subject. */
  account: string;
  providerName: string;
  /** Whom to ask for access (configured `access.contact`); absent: the gateway's administrator. */
  contact?: string;
  productName: string;
}

/** The form step the return button posts; interactions/decision.ts reads it. */
export const DENIED_STEP = 'denied';

export function deniedPage(view: DeniedView): SafeHtml {
  return html`
<h1>This account may not use ${view.serverName}</h1>
<div class="access-denied">
  <p class="signed-in-as">You are signed in as <strong>${view.account}</strong> with ${view.providerName}.</p>
  <p>This account is not allowed to use the MCP server <strong>${view.serverName}</strong>, so <strong>${view.clientName}</strong> cannot use it for you.</p>
  <p class="contact">${view.contact ? html`To get access, ask <strong>${view.contact}</strong>.` : html`To get access, ask the administrator of ${view.productName}.`} If you have another account that is allowed, start again from your application and sign in with that one.</p>
</div>
<form method="post" action="/interaction/${view.flowId}/decision" class="return">
  <input type="hidden" name="step" value="${DENIED_STEP}">
  <input type="hidden" name="csrf" value="${view.csrf}">
  <div class="actions"><button class="primary" type="submit" name="decision" value="return">Return to ${view.clientName}</button></div>
</form>`;
}
