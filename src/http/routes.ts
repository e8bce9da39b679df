/**
 * Every path the gateway answers itself, in one table: which methods, which room answers, and why the
 * path exists. The MCP server routes are not here: they come from the configuration (Host and path
 * prefix) and are matched before this table, on the hot path (router.ts).
 *
 * Pattern syntax, kept small on purpose:
 * - `/token`: exactly this path;
 * - `:name`: one non-empty segment, handed to the handler as `params.name` (a route may narrow its shape);
 * - a trailing `/*`: anything below the path, as `params.rest` (possibly empty);
 * - a leading `*`: any non-empty path before the rest, as `params.base` (path-appended aliases).
 *
 * oidc-provider's own routes are listed too, including those the gateway deliberately withholds
 * (`handler: null`, answered 404 like an unknown path): a unit test reads the routes the configured
 * provider registers and fails when one of them is missing here, so enabling an oidc-provider feature
 * cannot silently add an unrouted endpoint, or one a server path could shadow.
 *
 * This module is data plus pure functions; the configuration schema imports it to refuse server paths
 * the gateway needs, so it imports nothing.
 */

/** The room (src/<room>) whose code answers a route. */
export type Room = 'authorization' | 'idp' | 'resource-server' | 'forward-auth' | 'gateway';

/** The handlers a room supplies to the router, by name. */
export type HandlerName =
  | 'authorizationServerMetadata'
  | 'authorize'
  | 'oidcProvider'
  | 'registration'
  | 'consent'
  | 'consentDecision'
  | 'idpCallback'
  | 'localSignIn'
  | 'protectedResourceMetadata'
  | 'forwardAuthMetadata'
  | 'forwardAuthCheck'
  | 'health'
  | 'readiness'
  | 'metrics';

export interface GatewayRoute {
  readonly path: string;
  /** Methods answered; any other gets 405 with `Allow`. `any`: the method is the caller's business. */
  readonly methods: readonly string[] | 'any';
  readonly room: Room;
  /** null: an oidc-provider route the gateway does not expose (answered 404, still reserved). */
  readonly handler: HandlerName | null;
  /** Narrower shapes for `:name` segments; a path that does not fit is not this route. */
  readonly params?: Readonly<Record<string, RegExp>>;
  /** Why the path exists (or, for a withheld route, why it is withheld). */
  readonly about: string;
}

const DOCUMENT = ['GET', 'HEAD', 'OPTIONS'];
/** oidc-provider's nanoid uids. */
const UID = /^[A-Za-z0-9_-]+$/;

export const GATEWAY_ROUTES: readonly GatewayRoute[] = [
  // Discovery. All authorization-server aliases serve the one document, whose issuer is the origin.
  {
    path: '/.well-known/oauth-authorization-server',
    methods: DOCUMENT,
    room: 'authorization',
    handler: 'authorizationServerMetadata',
    about: 'RFC 8414 §3 metadata',
  },
  {
    path: '/.well-known/oauth-authorization-server/*',
    methods: DOCUMENT,
    room: 'authorization',
    handler: 'authorizationServerMetadata',
    about: 'RFC 8414 path-inserted form, probed by clients that take the MCP URL for the issuer',
  },
  {
    path: '/.well-known/openid-configuration',
    methods: DOCUMENT,
    room: 'authorization',
    handler: 'authorizationServerMetadata',
    about: 'OpenID Connect Discovery §4',
  },
  {
    path: '/.well-known/openid-configuration/*',
    methods: DOCUMENT,
    room: 'authorization',
    handler: 'authorizationServerMetadata',
    about: 'path-inserted OpenID form some clients probe',
  },
  {
    path: '*/.well-known/openid-configuration',
    methods: DOCUMENT,
    room: 'authorization',
    handler: 'authorizationServerMetadata',
    about: 'path-appended OpenID form (the MCP URL as issuer); taken from under every MCP server path',
  },
  {
    path: '/.well-known/oauth-protected-resource/forward-auth/:server',
    methods: DOCUMENT,
    room: 'forward-auth',
    handler: 'forwardAuthMetadata',
    about: 'RFC 9728 metadata of a forward-auth server, on the gateway origin so the proxy needs no route for it',
  },
  {
    path: '/.well-known/oauth-protected-resource',
    methods: DOCUMENT,
    room: 'resource-server',
    handler: 'protectedResourceMetadata',
    about: 'RFC 9728 metadata of the first server on this host, for clients that probe the root',
  },
  {
    path: '/.well-known/oauth-protected-resource/*',
    methods: DOCUMENT,
    room: 'resource-server',
    handler: 'protectedResourceMetadata',
    about: 'RFC 9728 §3.1 metadata, the well-known segment inserted into each resource URI',
  },

  // The OAuth endpoints (oidc-provider), at the root of the issuer.
  {
    path: '/authorize',
    methods: ['GET', 'HEAD'],
    room: 'authorization',
    handler: 'authorize',
    about: 'authorization endpoint; the default scope of the target server is applied first',
  },
  {
    path: '/authorize/:uid',
    methods: ['GET', 'HEAD'],
    room: 'authorization',
    handler: 'oidcProvider',
    about: 'oidc-provider resumes an authorization here once an interaction is finished',
  },
  { path: '/token', methods: ['POST', 'OPTIONS'], room: 'authorization', handler: 'oidcProvider', about: 'token endpoint' },
  {
    path: '/register',
    methods: ['POST', 'OPTIONS'],
    room: 'authorization',
    handler: 'registration',
    about: 'RFC 7591 dynamic registration, normalised, rate-limited and open to cross-origin callers',
  },
  { path: '/revoke', methods: ['POST', 'OPTIONS'], room: 'authorization', handler: 'oidcProvider', about: 'RFC 7009 revocation' },
  {
    path: '/introspect',
    methods: ['POST', 'OPTIONS'],
    room: 'authorization',
    handler: 'oidcProvider',
    about: 'RFC 7662 introspection for the configured introspection clients; 404 while none is configured',
  },
  { path: '/jwks', methods: DOCUMENT, room: 'authorization', handler: 'oidcProvider', about: 'the public signing keys' },
  {
    path: '/register/:clientId',
    methods: ['GET'],
    room: 'authorization',
    handler: null,
    about: 'RFC 7592 client read: withheld, no registration access token is ever issued',
  },
  {
    path: '/session/end/confirm',
    methods: ['POST'],
    room: 'authorization',
    handler: null,
    about: 'logout confirmation, which oidc-provider registers even with logout disabled: withheld, the gateway offers no logout',
  },

  // The login: consent, the upstream IdP, the built-in sign-in.
  {
    path: '/interaction/:uid',
    methods: ['GET'],
    room: 'authorization',
    handler: 'consent',
    params: { uid: UID },
    about: 'the consent page of one authorization',
  },
  {
    path: '/interaction/:uid/decision',
    methods: ['POST'],
    room: 'authorization',
    handler: 'consentDecision',
    params: { uid: UID },
    about: 'the consent form posts here',
  },
  { path: '/callback', methods: ['GET'], room: 'authorization', handler: 'idpCallback', about: 'the upstream IdP redirects back here' },
  {
    path: '/sign-in/:provider',
    methods: ['GET', 'HEAD', 'POST'],
    room: 'idp',
    handler: 'localSignIn',
    about: 'the sign-in form of a local (built-in) identity provider',
  },

  // For the operator's infrastructure.
  {
    path: '/forward-auth',
    methods: 'any',
    room: 'forward-auth',
    handler: 'forwardAuthCheck',
    about: 'the check a reverse proxy calls; the server is found from the original host and path',
  },
  {
    path: '/forward-auth/*',
    methods: 'any',
    room: 'forward-auth',
    handler: 'forwardAuthCheck',
    about: 'the check for one named server (Envoy appends the original path)',
  },
  { path: '/healthz', methods: ['GET', 'HEAD'], room: 'gateway', handler: 'health', about: 'liveness for load balancers and orchestrators' },
  {
    path: '/readyz',
    methods: ['GET', 'HEAD'],
    room: 'gateway',
    handler: 'readiness',
    about: 'readiness: storage reachable, keys loaded, IdP discovery loaded; 503 while draining (src/http/health.ts)',
  },
  {
    path: '/metrics',
    methods: ['GET'],
    room: 'gateway',
    handler: 'metrics',
    about: 'Prometheus metrics, here only with `metrics.onMainListener` (else on `metrics.listen`, or 404)',
  },
];

export interface RouteMatch {
  readonly route: GatewayRoute;
  readonly params: Readonly<Record<string, string>>;
}

const NO_PARAMS: Readonly<Record<string, string>> = Object.freeze({});

interface CompiledPattern {
  readonly route: GatewayRoute;
  readonly pattern: RegExp;
}

function isLiteral(path: string): boolean {
  return !path.includes(':') && !path.includes('*');
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function compile(route: GatewayRoute): RegExp {
  let body = route.path;
  let source = '';
  if (body.startsWith('*')) {
    source += '(?<base>.+)';
    body = body.slice(1);
  }
  const rest = body.endsWith('/*');
  if (rest) body = body.slice(0, -2);
  source += body
    .split('/')
    .map((segment) => (segment.startsWith(':') ? `(?<${segment.slice(1)}>[^/]+)` : escapeRegExp(segment)))
    .join('/');
  if (rest) source += '/(?<rest>.*)';
  return new RegExp(`^${source}$`);
}

/** `/token` of `/token`, `/forward-auth` of `/forward-auth/x/y`. */
function firstSegment(path: string): string {
  const end = path.indexOf('/', 1);
  return end === -1 ? path : path.slice(0, end);
}

const EXACT = new Map<string, GatewayRoute>(GATEWAY_ROUTES.filter((route) => isLiteral(route.path)).map((route) => [route.path, route]));
const PATTERNS: readonly CompiledPattern[] = GATEWAY_ROUTES.filter((route) => !isLiteral(route.path)).map((route) => ({ route, pattern: compile(route) }));
const ANYWHERE = PATTERNS.filter(({ route }) => route.path.startsWith('*'));
/**
 * The patterns a path can match, by its first segment, still in table order (the leading-`*` ones
 * apply under every segment): a forward-auth check, called for every request a proxy lets through,
 * tries two patterns rather than the whole table.
 */
const BY_FIRST_SEGMENT = new Map<string, readonly CompiledPattern[]>(
  PATTERNS.filter(({ route }) => !route.path.startsWith('*')).map(({ route }) => {
    const segment = firstSegment(route.path);
    return [segment, PATTERNS.filter((candidate) => candidate.route.path.startsWith('*') || firstSegment(candidate.route.path) === segment)];
  }),
);

function paramsFit(route: GatewayRoute, params: Record<string, string>): boolean {
  if (route.params === undefined) return true;
  return Object.entries(route.params).every(([name, shape]) => shape.test(params[name] ?? ''));
}

/**
 * The table entry for a request path (query already split off): an exact path first, then the
 * patterns in table order.
 */
export function matchRoute(path: string): RouteMatch | undefined {
  const exact = EXACT.get(path);
  if (exact !== undefined) return { route: exact, params: NO_PARAMS };
  for (const { route, pattern } of BY_FIRST_SEGMENT.get(firstSegment(path)) ?? ANYWHERE) {
    const found = pattern.exec(path);
    if (found === null) continue;
    const params: Record<string, string> = { ...found.groups };
    if (paramsFit(route, params)) return { route, params };
  }
  return undefined;
}

/** The path ends that the table takes from under every MCP server path (the leading-`*` aliases). */
export const ALIAS_SUFFIXES: readonly string[] = GATEWAY_ROUTES.filter((route) => route.path.startsWith('*')).map((route) => route.path.slice(1));

/**
 * The first segments of the gateway's own paths. A server path equal to one, or below one, is refused:
 * MCP routes are matched first and by prefix, so such a server would shadow the gateway (or, below a
 * withheld route, hold a path oidc-provider may one day answer).
 */
export const RESERVED_PATHS: readonly string[] = [
  ...new Set(GATEWAY_ROUTES.filter((route) => !route.path.startsWith('*')).map((route) => `/${route.path.split('/')[1]}`)),
];

/**
 * The gateway path a server `path` would collide with, or undefined when the path is free. Besides the
 * reserved first segments, a path that is itself one of the path-appended aliases (or below one) is
 * refused: the router never hands such a path to an MCP server.
 */
export function serverPathConflict(path: string): string | undefined {
  const reserved = RESERVED_PATHS.find((root) => path === root || path.startsWith(`${root}/`));
  if (reserved !== undefined) return reserved;
  return ALIAS_SUFFIXES.find((suffix) => `${path}/`.includes(`${suffix}/`));
}
