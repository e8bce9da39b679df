/**
 * The access rules (src/policy/access.ts) after the IdP vouched for someone, and the page shown when
 * they refuse. The page's only form posts the denied step, which sends access_denied back to the
 * client (see decision.ts); its CSRF token exists only once a refusal happened.
 */
import type { ServerResponse } from 'node:http';
import { userIdFor } from '../../core/identity.ts';
import type { IdentityProvider, IdpLoginResult } from '../../idp/types.ts';
import { type AccessDecision, type AccessPolicy, evaluateAccess } from '../../policy/access.ts';
import { sendPage } from '../../ui/layout.ts';
import { deniedPage } from '../pages/denied-page.ts';
import type { ProtectedResource } from '../provider.ts';
import type { InteractionContext } from './context.ts';
import type { PendingLogin } from './pending-login.ts';
import { DENIED_STEP, stepCsrfToken } from './steps.ts';

const NO_RULES: AccessPolicy = {
  gateway: { emails: [], emailDomains: [], groups: [], githubOrgs: [], githubTeams: [], tenants: [], subjects: [] },
  server: { emails: [], emailDomains: [], groups: [], githubOrgs: [], githubTeams: [], tenants: [], subjects: [] },
};

interface SignedIn {
  pending: PendingLogin;
  login: IdpLoginResult;
  idp: IdentityProvider;
}

/** The access rules' verdict; when it refuses, the denied page has been sent and nothing was recorded. */
export function checkAccessRules(ctx: InteractionContext, res: ServerResponse, signedIn: SignedIn): AccessDecision {
  const { pending, login, idp } = signedIn;
  const server = ctx.resources.find((candidate) => candidate.resource === pending.resource);
  // Fail closed: a server that is no longer configured admits nobody.
  const decision: AccessDecision = server
    ? evaluateAccess(login.identity, idp.id, server.access ?? NO_RULES)
    : { allowed: false, reason: 'the MCP server is no longer configured' };
  if (decision.allowed) return decision;
  ctx.logger.info(
    {
      event: 'login.denied',
      userId: userIdFor(idp.id, login.identity.subject),
      provider: idp.id,
      server: server?.name ?? pending.resource,
      clientId: pending.clientId,
      reason: decision.reason,
    },
    'access rules refused the user',
  );
  showAccessDenied(ctx, res, signedIn, server);
  return decision;
}

export function showAccessDenied(
  ctx: Pick<InteractionContext, 'consentSecret' | 'branding'>,
  res: ServerResponse,
  signedIn: SignedIn,
  server: ProtectedResource | undefined,
): void {
  const { pending, login, idp } = signedIn;
  const page = deniedPage({
    flowId: pending.interactionUid,
    csrf: stepCsrfToken(ctx.consentSecret, DENIED_STEP, pending.interactionUid),
    clientName: pending.clientName,
    serverName: server?.name ?? pending.resource,
    account: login.identity.email ?? login.identity.name ?? login.identity.subject,
    providerName: idp.displayName,
    contact: server?.access?.server.contact ?? server?.access?.gateway.contact,
    productName: ctx.branding.productName,
  });
  sendPage(res, 403, ctx.branding, 'Access denied', page);
}
