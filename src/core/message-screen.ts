/**
 * The hook through which the resource server screens one MCP request's messages and filters the
 * answers, without the proxy (src/proxy) or the stdio bridge (src/stdio) knowing why. The resource
 * server builds one per request for servers with `toolAccess` (src/resource-server/tool-policy.ts);
 * servers without rules get none and pay nothing.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';

/** A complete answer the gateway sends instead of forwarding the request. */
export interface ScreenRefusal {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
}

export interface MessageScreen {
  /**
   * Judges a POST's messages (parsed once, by the caller). A refusal is the whole answer; undefined
   * lets the messages through, after which `filtersResponses` says whether answers need filtering.
   */
  admit(messages: readonly JSONRPCMessage[], batch: boolean, headers: IncomingHttpHeaders): ScreenRefusal | undefined;
  /**
   * A GET stream: answers on it belong to no request of this HTTP exchange (a resumed stream replays
   * earlier ones, MCP Transports "Resumability and Redelivery"), so every list answer on it is filtered.
   */
  admitStream(): void;
  /** True when an answer to an admitted request must pass through `filterResponse` (a list request). */
  readonly filtersResponses: boolean;
  /** One message from the server, with whatever the caller may not see removed (the same object when nothing is). */
  filterResponse(message: JSONRPCMessage): JSONRPCMessage;
}

/** What an in-process target (the stdio bridge) learns about a request besides its user. */
export interface InProcessRequest {
  /** The request's screen, for servers with `toolAccess`. */
  screen?: MessageScreen;
  /** The OAuth client the token was issued to: a session belongs to its user and client. */
  clientId?: string;
}
