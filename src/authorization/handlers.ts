/**
 * The authorization room's answers to the gateway's route table (src/http/routes.ts): oidc-provider's
 * endpoints with the gateway's additions in front (one metadata document for every alias, the default
 * scope on /authorize, CORS, rate limit and normalisation on /register), and the login steps
 * (consent, decision, the IdP callback). Which path and method reach each handler is the table's
 * business; nothing here looks at the path.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RouteHandlers } from '../http/router.ts';
import { type ProtectedResource, resolveResource } from './provider.ts';
import { grantableScope } from './request-scope.ts';

export type AuthorizationHandlers = Required<
  Pick<RouteHandlers, 'authorizationServerMetadata' | 'authorize' | 'oidcProvider' | 'registration' | 'consent' | 'consentDecision' | 'idpCallback'>
>;

/** The login steps (interactions.ts) the handlers hand over to. */
export interface LoginSteps {
  showConsent(req: IncomingMessage, res: ServerResponse, uid: string): Promise<void>;
  decide(req: IncomingMessage, res: ServerResponse, uid: string): Promise<void>;
  callback(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void>;
}

export interface AuthorizationHandlerDeps {
  issuer: string;
  /** oidc-provider's request listener. */
  provider: (req: IncomingMessage, res: ServerResponse) => Promise<void>;
  login: LoginSteps;
  resources: readonly ProtectedResource[];
  canonicalizeResource: (value: string) => string | undefined;
  /** False once a 429 has been answered. */
  registrationWithinLimit(req: IncomingMessage, res: ServerResponse): Promise<boolean>;
  /** The request with its DCR body normalised, or undefined once an error has been answered. */
  normalisedRegistration(req: IncomingMessage, res: ServerResponse): Promise<IncomingMessage | undefined>;
}

export function createAuthorizationHandlers(deps: AuthorizationHandlerDeps): AuthorizationHandlers {
  const { issuer, provider, login } = deps;
  return {
    // Every metadata location clients probe serves the one document oidc-provider publishes, whose
    // `issuer` is always the gateway origin.
    authorizationServerMetadata: (req, res) => {
      req.url = '/.well-known/openid-configuration';
      return provider(req, res);
    },
    authorize: (req, res) => {
      if (req.method === 'GET') applyDefaultScope(deps, req, new URL(req.url ?? '/', issuer));
      return provider(req, res);
    },
    oidcProvider: (req, res) => provider(req, res),
    registration: (req, res) => register(deps, req, res),
    consent: (req, res, target) => login.showConsent(req, res, target.params.uid as string),
    consentDecision: (req, res, target) => login.decide(req, res, target.params.uid as string),
    idpCallback: (req, res) => login.callback(req, res, new URL(req.url ?? '/', issuer)),
  };
}

/** Applies the default scope (RFC 6749 §3.3) for the MCP server the request targets. */
function applyDefaultScope(deps: AuthorizationHandlerDeps, req: IncomingMessage, url: URL): void {
  const indicators = url.searchParams.getAll('resource');
  const server = resolveResource(deps.resources, deps.canonicalizeResource, indicators.length > 1 ? indicators : indicators[0]);
  if (!server) return; // oidc-provider answers an unknown resource with invalid_target; consent refuses several
  url.searchParams.set('scope', grantableScope(url.searchParams.get('scope'), server));
  req.url = `${url.pathname}${url.search}`;
}

/**
 * Browser-based clients (MCP Inspector) register cross-origin; oidc-provider has no CORS there. No
 * credentials are involved, so any origin may call it.
 */
async function register(deps: AuthorizationHandlerDeps, req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (req.method === 'OPTIONS') {
    res.writeHead(204, registrationPreflightHeaders(req));
    res.end();
    return;
  }
  res.setHeader('access-control-allow-origin', '*');
  if (!(await deps.registrationWithinLimit(req, res))) return;
  if (!req.headers['content-type']?.startsWith('application/json')) {
    await deps.provider(req, res); // oidc-provider refuses it in the OAuth error format
    return;
  }
  const replay = await deps.normalisedRegistration(req, res);
  if (replay) await deps.provider(replay, res);
}

/**
 * CORS preflight answer for /register. No credentials are involved (no cookies, and
 * `Access-Control-Allow-Credentials` is never sent), so any origin may register, with whatever request
 * headers its MCP client library adds (the SDK adds `MCP-Protocol-Version`, which a fixed list would
 * refuse and with it the whole registration).
 */
function registrationPreflightHeaders(req: IncomingMessage): Record<string, string> {
  const requested = req.headers['access-control-request-headers'];
  return {
    'access-control-allow-origin': '*',
    'access-control-allow-methods': 'POST',
    'access-control-allow-headers': typeof requested === 'string' && requested.length <= 1024 ? requested : 'content-type, authorization, mcp-protocol-version',
    'access-control-max-age': '600',
    'cache-control': 'no-store',
  };
}
