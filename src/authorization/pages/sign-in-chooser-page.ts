/**
 * The sign-in chooser: shown after consent when several identity providers are configured, so the
 * person picks where they have an account before anyone is sent to an IdP. One form per provider, each
 * posting back to the interaction with the chooser's own CSRF token (minted only once consent was
 * given), plus a way to cancel that answers the client with `access_denied`.
 *
 * Class names for styling: `sign-in-chooser` (the list), `sign-in-option` (each item and its form),
 * `provider-button` (the provider's button, also `primary`), `cancel` (the cancel form).
 */
import { html, type SafeHtml } from '../../ui/layout.ts';

export interface SignInChooserView {
  flowId: string;
  csrf: string;
  clientName: string;
  serverName: string;
  providers: { id: string; displayName: string }[];
  /** Optional scopes approved on the consent page, space-separated (carried back with the choice). */
  approved?: string;
}

/** Form field values the chooser posts; interactions/decision.ts reads them. */
export const CHOOSER_STEP = 'sign-in';

export function signInChooserPage(view: SignInChooserView): SafeHtml {
  const action = `/interaction/${view.flowId}/decision`;
  return html`
<h1>Choose how to sign in</h1>
<p>Sign in with the account you use for <strong>${view.serverName}</strong>. <strong>${view.clientName}</strong> will then use it as you.</p>
<ul class="sign-in-chooser">
  ${view.providers.map(
    (provider) => html`<li class="sign-in-option">
    <form method="post" action="${action}" class="sign-in-option">
      <input type="hidden" name="step" value="${CHOOSER_STEP}">
      <input type="hidden" name="csrf" value="${view.csrf}">
      <input type="hidden" name="approved" value="${view.approved ?? ''}">
      <button class="primary provider-button" type="submit" name="provider" value="${provider.id}">Sign in with ${provider.displayName}</button>
    </form>
  </li>`,
  )}
</ul>
<form method="post" action="${action}" class="cancel">
  <input type="hidden" name="step" value="${CHOOSER_STEP}">
  <input type="hidden" name="csrf" value="${view.csrf}">
  <div class="actions"><button type="submit" name="decision" value="deny">Cancel</button></div>
</form>`;
}
