/**
 * The interaction between the client's /authorize and the authorization code:
 *
 *   /authorize -> GET /interaction/:uid (consent page) -> POST /interaction/:uid/decision
 *     -> approve, several identity providers: the sign-in chooser -> POST /interaction/:uid/decision
 *        with step=sign-in and the chosen provider
 *     -> approve (one provider) or provider chosen: browser-binding cookie + pending login stored ->
 *        redirect to the IdP (gateway's own PKCE S256, state, nonce) -> GET /callback -> identity
 *        checked, access rules evaluated (src/policy/access.ts), user and IdP tokens stored
 *        (encrypted), grant created -> finish the interaction by uid -> /authorize/:uid -> code
 *     -> refused by the access rules: the denied page -> POST /interaction/:uid/decision with
 *        step=denied -> access_denied back to the client
 *     -> deny (consent or chooser): access_denied back to the client
 *
 * Every POST to /decision carries a `step` whose CSRF token is minted for that step and flow only:
 * the chooser's token is rendered only after consent was approved, and the denied page's only after a
 * refusal, so neither form can be reached by skipping a step. All of them also need the interaction
 * cookie of the browser that started /authorize.
 *
 * Nothing is redirected to the client before oidc-provider has validated the client and its redirect
 * URI (it did, before creating the interaction); failures before that point get an error page.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type Provider from 'oidc-provider';
import type { Storage } from '../storage/types.ts';
import type { SecretBox } from '../storage/secret-box.ts';
import { NS, userIdFor, type ConsentRecord, type UserRecord } from '../storage/records.ts';
import type { IdentityProvider, IdpLoginResult } from '../idp/types.ts';
import { IdpLoginError } from '../idp/types.ts';
import type { Logger } from '../observability/logger.ts';
import { readForm } from '../http/body.ts';
import { sendErrorPage, sendPage, type PageBranding } from '../ui/layout.ts';
import { bindingDigest, issueBinding, readBinding } from './browser-binding.ts';
import { csrfToken, csrfTokenValid } from '../http/csrf.ts';
import { consentPage, describeRedirect } from './pages/consent-page.ts';
import { onlyLoopbackRedirects } from './redirect-uris.ts';
import { OIDC_SCOPES, resolveResource, type ProtectedResource } from './provider.ts';
import { CHOOSER_STEP, signInChooserPage } from './pages/sign-in-chooser-page.ts';
import { DENIED_STEP, deniedPage } from './pages/denied-page.ts';
import { evaluateAccess, type AccessDecision, type AccessPolicy } from '../policy/access.ts';
import type { Interaction } from 'oidc-provider';

/** A login on its way through the IdP, stored under its `state` for at most ten minutes. */
export interface PendingLogin {
  state: string;
  codeVerifier: string;
  nonce: string;
  interactionUid: string;
  providerId: string;
  clientId: string;
  clientName: string;
  redirectUri: string;
  /** The resource indicator as the client sent it (or the default), which keys the grant. */
  resourceIndicator: string;
  resource: string;
  resourceScopes: string[];
  oidcScopes: string[];
  browser: string;
}

const NO_RULES: AccessPolicy = {
  gateway: { emails: [], emailDomains: [], groups: [], githubOrgs: [], githubTeams: [], tenants: [], subjects: [] },
  server: { emails: [], emailDomains: [], groups: [], githubOrgs: [], githubTeams: [], tenants: [], subjects: [] },
};

/** RFC 9700 §4.7.1: the state is single-use and short-lived. */
const PENDING_LOGIN_TTL = 600;

/** The forms that post to /interaction/:uid/decision, each with its own CSRF purpose. */
const CSRF_PURPOSE: Record<string, string> = {
  consent: 'consent',
  [CHOOSER_STEP]: 'sign-in-choice',
  [DENIED_STEP]: 'access-denied',
};

export interface InteractionOptions {
  provider: Provider;
  issuer: string;
  resources: ProtectedResource[];
  canonicalizeResource: (value: string) => string | undefined;
  storage: Storage;
  secretBox: SecretBox;
  identityProviders: IdentityProvider[];
  consentSecret: Buffer;
  branding: PageBranding;
  logger: Logger;
  tokenRetention: { idpTokens: number; consents: number };
}

interface RequestedAccess {
  resourceIndicator: string;
  server: ProtectedResource;
  resourceScopes: string[];
  oidcScopes: string[];
}

export function createInteractions(options: InteractionOptions) {
  const { provider, storage, logger, branding } = options;
  const callbackUrl = new URL('/callback', options.issuer).href;

  function requestedAccess(params: Record<string, unknown>): RequestedAccess | undefined {
    const server = resolveResource(options.resources, options.canonicalizeResource, params.resource);
    if (!server) return undefined;
    // The grant is keyed by the indicator as the client sent it, or by the default oidc-provider applied.
    const indicator = typeof params.resource === 'string' ? params.resource : server.resource;
    const requested = typeof params.scope === 'string' ? params.scope.split(' ').filter(Boolean) : [];
    return {
      resourceIndicator: indicator,
      server,
      resourceScopes: requested.filter((scope) => server.scopes.includes(scope)),
      oidcScopes: requested.filter((scope) => OIDC_SCOPES.includes(scope)),
    };
  }

  async function details(req: IncomingMessage, res: ServerResponse) {
    try {
      return await provider.interactionDetails(req, res);
    } catch (error) {
      // Usually an expired interaction or a missing cookie; a storage failure looks the same to the
      // person, so the reason goes to the log.
      logger.info({ event: 'interaction.unavailable', reason: (error as Error).message }, 'interaction could not be loaded');
      sendErrorPage(res, 400, branding, 'This sign-in has expired', 'The sign-in request is no longer valid, or it was started in another browser.');
      return undefined;
    }
  }

  async function showConsent(req: IncomingMessage, res: ServerResponse, uid: string): Promise<void> {
    const interaction = await details(req, res);
    if (!interaction) return;
    if (interaction.uid !== uid) {
      sendErrorPage(res, 400, branding, 'This sign-in has expired', 'The sign-in request does not match this browser.');
      return;
    }
    logger.debug({ uid, prompt: interaction.prompt }, 'interaction started');
    const clientId = String(interaction.params.client_id);
    const client = await provider.Client.find(clientId);
    const access = requestedAccess(interaction.params);
    if (!client || !access) {
      sendErrorPage(res, 400, branding, 'Unknown application', 'The application or MCP server in this request is not known to this gateway. Each sign-in is for exactly one MCP server.');
      return;
    }
    const redirectUri = String(interaction.params.redirect_uri);
    const isMetadataDocument = /^https:\/\//.test(clientId);
    sendPage(
      res,
      200,
      branding,
      'Allow access?',
      consentPage({
        flowId: uid,
        csrf: csrfToken(options.consentSecret, 'consent', uid),
        clientName: client.clientName ?? clientId,
        clientId,
        redirectTarget: describeRedirect(redirectUri),
        metadataHost: isMetadataDocument ? new URL(clientId).host : undefined,
        onlyLoopbackRedirects: onlyLoopbackRedirects(client.redirectUris ?? []),
        server: access.server,
        scopes: access.resourceScopes,
        // The provider is chosen after consent (sign-in chooser), so the consent page offers a single
        // "approve": with one entry the consent page renders exactly that button.
      }),
    );
  }

  /** access_denied back to the client through oidc-provider, with `iss` (RFC 9207) and the client's `state`. */
  async function finishDenied(req: IncomingMessage, res: ServerResponse, description: string): Promise<void> {
    await provider.interactionFinished(req, res, { error: 'access_denied', error_description: description }, { mergeWithLastSubmission: false });
  }

  /** Every form of the interaction posts here; `step` says which one (consent, chooser, denied page). */
  async function decide(req: IncomingMessage, res: ServerResponse, uid: string): Promise<void> {
    const form = await readForm(req);
    const interaction = await details(req, res);
    if (!interaction) return;
    const step = form.step ?? 'consent';
    const purpose = Object.hasOwn(CSRF_PURPOSE, step) ? CSRF_PURPOSE[step] : undefined;
    if (interaction.uid !== uid || !purpose || !csrfTokenValid(options.consentSecret, purpose, uid, form.csrf)) {
      sendErrorPage(res, 403, branding, 'Request refused', 'The form could not be verified. Start the sign-in again from your application.');
      return;
    }
    const clientId = String(interaction.params.client_id);
    if (step === DENIED_STEP) {
      // The access rules refused this account at the callback (logged there as login.denied).
      await finishDenied(req, res, 'This account is not allowed to use this MCP server.');
      return;
    }
    const access = requestedAccess(interaction.params);
    const decision = form.decision ?? '';
    if (decision === 'deny' || !access) {
      logger.info({ event: 'consent.denied', clientId, step }, 'user denied the client');
      await finishDenied(req, res, 'The user denied the request.');
      return;
    }

    if (step === 'consent') {
      if (decision !== 'approve') {
        sendErrorPage(res, 400, branding, 'Request refused', 'The choice you made was not understood. Start the sign-in again.');
        return;
      }
      const only = options.identityProviders.length === 1 ? options.identityProviders[0] : undefined;
      logger.info({ event: 'consent.approved', clientId, server: access.server.name, provider: only?.id }, 'user approved the client');
      if (only) {
        await startIdpLogin(req, res, interaction, access, only);
        return;
      }
      const client = await provider.Client.find(clientId);
      sendPage(
        res,
        200,
        branding,
        'Choose how to sign in',
        signInChooserPage({
          flowId: uid,
          csrf: csrfToken(options.consentSecret, CSRF_PURPOSE[CHOOSER_STEP]!, uid),
          clientName: client?.clientName ?? clientId,
          serverName: access.server.name,
          providers: options.identityProviders.map(({ id, displayName }) => ({ id, displayName })),
        }),
      );
      return;
    }

    // The chooser: the provider must be one of the configured ones, by exact id.
    const idp = options.identityProviders.find((candidate) => candidate.id === form.provider);
    if (!idp) {
      logger.info({ event: 'sign_in.unknown_provider', clientId }, 'sign-in chooser posted a provider that is not configured');
      sendErrorPage(res, 400, branding, 'Unknown sign-in option', 'That way of signing in is not available. Start the sign-in again from your application.');
      return;
    }
    await startIdpLogin(req, res, interaction, access, idp);
  }

  /**
   * After consent: binds the browser, stores the pending login and sends the browser to the IdP. The
   * MCP spec's confused-deputy rule is why nothing reaches here before consent.
   */
  async function startIdpLogin(req: IncomingMessage, res: ServerResponse, interaction: Interaction, access: RequestedAccess, idp: IdentityProvider): Promise<void> {
    const clientId = String(interaction.params.client_id);
    const client = await provider.Client.find(clientId);
    const binding = issueBinding(req, options.consentSecret);
    const pending: PendingLogin = {
      state: randomBytes(32).toString('base64url'),
      codeVerifier: randomBytes(48).toString('base64url'),
      nonce: randomBytes(32).toString('base64url'),
      interactionUid: interaction.uid,
      providerId: idp.id,
      clientId,
      clientName: client?.clientName ?? clientId,
      redirectUri: String(interaction.params.redirect_uri),
      resourceIndicator: access.resourceIndicator,
      resource: access.server.resource,
      resourceScopes: access.resourceScopes,
      oidcScopes: access.oidcScopes,
      browser: bindingDigest(binding.value),
    };
    await storage.set(NS.pendingLogins, pending.state, options.secretBox.sealJson(pending, pending.state), PENDING_LOGIN_TTL);
    logger.info({ event: 'login.redirect', clientId, server: access.server.name, provider: idp.id }, 'redirecting to the identity provider');

    let target: URL;
    try {
      target = await idp.authorizationUrl(pending, callbackUrl);
    } catch (error) {
      await storage.delete(NS.pendingLogins, pending.state);
      logger.error({ err: error, provider: idp.id }, 'could not build the identity provider redirect');
      await provider.interactionFinished(req, res, { error: 'temporarily_unavailable', error_description: 'The identity provider is unavailable.' }, { mergeWithLastSubmission: false });
      return;
    }
    res.writeHead(303, { location: target.href, 'set-cookie': binding.setCookie, 'cache-control': 'no-store' });
    res.end();
  }

  /** Finishes the client's authorization by interaction uid (the callback path has no interaction cookie). */
  async function finish(res: ServerResponse, uid: string, result: Record<string, unknown>): Promise<void> {
    const interaction = await provider.Interaction.find(uid);
    if (!interaction) {
      sendErrorPage(res, 400, branding, 'This sign-in has expired', 'The sign-in took too long. Start it again from your application.');
      return;
    }
    interaction.result = result as never;
    await interaction.save(Math.max(1, (interaction.exp ?? 0) - Math.floor(Date.now() / 1000)));
    res.writeHead(303, { location: interaction.returnTo, 'cache-control': 'no-store' });
    res.end();
  }

  async function recordLogin(pending: PendingLogin, login: IdpLoginResult): Promise<UserRecord> {
    const userId = userIdFor(pending.providerId, login.identity.subject);
    const now = Math.floor(Date.now() / 1000);
    const existing = await storage.get<UserRecord>(NS.users, userId);
    const user: UserRecord = {
      id: userId,
      provider: pending.providerId,
      subject: login.identity.subject,
      email: login.identity.email,
      emailVerified: login.identity.emailVerified,
      name: login.identity.name,
      groups: login.identity.groups,
      tenantId: login.identity.tenantId,
      organizations: login.identity.organizations,
      teams: login.identity.teams,
      createdAt: existing?.createdAt ?? now,
      lastLoginAt: now,
    };
    await storage.set(NS.users, userId, user);
    if (login.tokens.accessToken || login.tokens.refreshToken) {
      // Associated data = the user id: a sealed token copied onto another user's record will not open.
      await storage.set(NS.idpTokens, userId, options.secretBox.sealJson(login.tokens, userId), options.tokenRetention.idpTokens);
    }
    const consent: ConsentRecord = {
      userId,
      clientId: pending.clientId,
      clientName: pending.clientName,
      redirectUri: pending.redirectUri,
      resource: pending.resource,
      scopes: pending.resourceScopes,
      approvedAt: now,
    };
    await storage.set(NS.consents, `${userId}|${pending.clientId}|${pending.resource}`, consent, options.tokenRetention.consents);
    return user;
  }

  async function callback(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const state = url.searchParams.get('state');
    const sealed = state ? await storage.consume<string>(NS.pendingLogins, state) : undefined;
    if (!state || sealed === undefined) {
      sendErrorPage(res, 400, branding, 'This sign-in has expired', 'This sign-in link was already used or has expired. Start the sign-in again from your application.');
      return;
    }
    const pending = options.secretBox.openJson<PendingLogin>(sealed, state);
    const browser = readBinding(req, options.consentSecret);
    if (!browser || bindingDigest(browser) !== pending.browser) {
      // RFC 9700 §4.7: a callback in a browser that did not approve this client is refused.
      logger.warn({ event: 'callback.unbound', clientId: pending.clientId }, 'identity provider callback in a browser that did not give consent');
      sendErrorPage(res, 403, branding, 'Sign-in refused', 'This sign-in was approved in a different browser. Start it again from your application in this browser.');
      return;
    }
    const idp = options.identityProviders.find((candidate) => candidate.id === pending.providerId);
    if (!idp) {
      sendErrorPage(res, 400, branding, 'Sign-in refused', 'The identity provider for this sign-in is no longer configured.');
      return;
    }

    let login: IdpLoginResult;
    try {
      login = await idp.completeLogin(url, pending, callbackUrl);
    } catch (error) {
      const failure = error instanceof IdpLoginError ? error : new IdpLoginError('server_error', 'The sign-in could not be completed.', String(error), { cause: error });
      logger.warn({ event: 'login.failed', provider: idp.id, clientId: pending.clientId, reason: failure.publicCode, detail: failure.detail }, 'IdP login failed');
      await finish(res, pending.interactionUid, { error: failure.publicCode, error_description: failure.message });
      return;
    }

    const server = options.resources.find((candidate) => candidate.resource === pending.resource);
    // Fail closed: a server that is no longer configured admits nobody.
    const decision: AccessDecision = server
      ? evaluateAccess(login.identity, idp.id, server.access ?? NO_RULES)
      : { allowed: false, reason: 'the MCP server is no longer configured' };
    if (!decision.allowed) {
      // Nothing is recorded: no user, no IdP tokens, no consent, no grant.
      logger.info(
        { event: 'login.denied', userId: userIdFor(idp.id, login.identity.subject), provider: idp.id, server: server?.name ?? pending.resource, clientId: pending.clientId, reason: decision.reason },
        'access rules refused the user',
      );
      sendPage(
        res,
        403,
        branding,
        'Access denied',
        deniedPage({
          flowId: pending.interactionUid,
          csrf: csrfToken(options.consentSecret, CSRF_PURPOSE[DENIED_STEP]!, pending.interactionUid),
          clientName: pending.clientName,
          serverName: server?.name ?? pending.resource,
          account: login.identity.email ?? login.identity.name ?? login.identity.subject,
          providerName: idp.displayName,
          contact: server?.access?.server.contact ?? server?.access?.gateway.contact,
          productName: branding.productName,
        }),
      );
      return;
    }

    const user = await recordLogin(pending, login);
    const grant = new provider.Grant({ accountId: user.id, clientId: pending.clientId });
    if (pending.oidcScopes.length > 0) grant.addOIDCScope(pending.oidcScopes.join(' '));
    grant.addResourceScope(pending.resourceIndicator, pending.resourceScopes.join(' '));
    const grantId = await grant.save();
    logger.info({ event: 'login.succeeded', user: user.id, clientId: pending.clientId, server: pending.resource, grantId, rule: decision.rule }, 'user signed in');
    await finish(res, pending.interactionUid, { login: { accountId: user.id }, consent: { grantId } });
  }

  return { showConsent, decide, callback, callbackUrl };
}
