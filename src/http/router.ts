/**
 * The one dispatcher: the MCP server routes first, then the gateway's own route table (routes.ts).
 *
 * The MCP routes are the hot path (an authenticated MCP request): the URL is split once, the server is
 * found by Host and longest path prefix, and the request is handed over synchronously, with no
 * framework object and no table lookup. Only what no MCP server claims reaches the table.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { sendJson } from './errors.ts';
import { ALIAS_SUFFIXES, type GatewayRoute, type HandlerName, matchRoute } from './routes.ts';

/** The request target as the table matched it. */
export interface RequestTarget {
  /** The path, as received (no decoding, no normalisation). */
  readonly path: string;
  /** `?` and the query, or empty. */
  readonly search: string;
  /** The pattern's `:name`, `rest` and `base` parts (routes.ts). */
  readonly params: Readonly<Record<string, string>>;
}

/**
 * Answers a request the table routed to it. `false`, returned synchronously and having touched
 * nothing, means there is nothing at this path after all (an unknown server name, say): a 404.
 */
export type RouteHandler = (req: IncomingMessage, res: ServerResponse, target: RequestTarget) => void | false | Promise<void>;

export type RouteHandlers = { readonly [name in HandlerName]?: RouteHandler };

/** The MCP server routes: true when a server claims the path (and then answers it). */
export type McpDispatch = (req: IncomingMessage, res: ServerResponse, path: string, query: string) => boolean;

export interface RouterOptions {
  mcp?: McpDispatch;
  /** A handler missing here makes its routes answer 404 (a gateway assembled without that room). */
  handlers: RouteHandlers;
  /** A handler threw or rejected; the answer, if any, is the callee's to write. */
  onError(error: unknown, req: IncomingMessage, res: ServerResponse): void;
}

export type RequestListener = (req: IncomingMessage, res: ServerResponse) => void;

export function createRouter(options: RouterOptions): RequestListener {
  const { mcp, handlers, onError } = options;
  return (req, res) => {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    try {
      if (mcp !== undefined && !isAliasPath(path) && mcp(req, res, path, q === -1 ? '' : url.slice(q + 1))) return;
      const pending = dispatchToTable(req, res, handlers, tablePath(path, url), q === -1 ? '' : url.slice(q));
      pending?.catch((error: unknown) => onError(error, req, res));
    } catch (error) {
      onError(error, req, res);
    }
  };
}

/** `/<mcp path>/.well-known/openid-configuration` is authorization-server metadata, not MCP traffic. */
function isAliasPath(path: string): boolean {
  for (const suffix of ALIAS_SUFFIXES) if (path.endsWith(suffix)) return true;
  return false;
}

/** The absolute form (RFC 9112 §3.2.2) is matched by its path, as origin-form requests are. */
function tablePath(path: string, url: string): string {
  if (path.charCodeAt(0) === 0x2f) return path;
  return URL.parse(url)?.pathname ?? path;
}

function dispatchToTable(req: IncomingMessage, res: ServerResponse, handlers: RouteHandlers, path: string, search: string): Promise<void> | undefined {
  const match = matchRoute(path);
  const handler = match?.route.handler ? handlers[match.route.handler] : undefined;
  if (match === undefined || handler === undefined) {
    sendNotFound(res, path);
    return undefined;
  }
  if (!methodAllowed(match.route, req.method)) {
    sendMethodNotAllowed(res, match.route);
    return undefined;
  }
  const result = handler(req, res, { path, search, params: match.params });
  if (result === false) sendNotFound(res, path);
  return result instanceof Promise ? result : undefined;
}

function methodAllowed(route: GatewayRoute, method: string | undefined): boolean {
  return route.methods === 'any' || route.methods.includes(method ?? 'GET');
}

function sendNotFound(res: ServerResponse, path: string): void {
  sendJson(res, 404, { error: 'not_found', error_description: `nothing is served at ${path}` });
}

function sendMethodNotAllowed(res: ServerResponse, route: GatewayRoute): void {
  // RFC 9110 §15.5.6: a 405 lists the methods the target does support.
  sendJson(res, 405, { error: 'invalid_request', error_description: 'method not allowed' }, { allow: (route.methods as readonly string[]).join(', ') });
}
