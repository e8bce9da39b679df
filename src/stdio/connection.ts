/**
 * One stdio MCP server as seen by many client sessions: the process behind it (started on demand,
 * restarted with backoff after a crash, recycled when its IdP token is about to expire) and the
 * routing of JSON-RPC messages between the sessions and that one process.
 *
 * A stdio server expects exactly one client and one `initialize` (MCP Lifecycle). So the connection
 * initializes each process itself, always with the same parameters (the union of the client
 * capabilities the bridge can route: sampling, elicitation, roots), and answers every session's own
 * `initialize` from the process's cached result. Because the parameters never change, a restarted or
 * recycled process is initialized the same way and the client sessions carry on unaware (the server's
 * in-memory state, such as resource subscriptions, does not survive, as after any restart).
 *
 * Ids: requests from sessions get connection-assigned ids on the process side (JSON-RPC ids are only
 * unique per sender, and two sessions both send id 1), and so do progress tokens, which SDK clients
 * derive from their request ids. Responses and progress are mapped back to the session that asked.
 * Requests from the process (sampling, elicitation, roots) go to one session: the one with the most
 * recent request in flight that declared the capability, else the most recently active session that
 * can receive unsolicited messages; their responses go back with the process's own id.
 */
import type { JSONRPCMessage, RequestId } from '@modelcontextprotocol/sdk/types.js';
import { LATEST_PROTOCOL_VERSION, SUPPORTED_PROTOCOL_VERSIONS } from '@modelcontextprotocol/sdk/types.js';
import { type Clock, systemClock } from '../core/clock.ts';
import { ErrorCode, type ErrorCodeValue, GatewayError } from '../core/errors.ts';
import {
  errorResponse,
  idKey,
  isNotification,
  isRequest,
  isResponse,
  JsonRpcCode,
  JsonRpcFailure,
  type JsonRpcNotification,
  type JsonRpcRequest,
  type JsonRpcResponse,
} from '../core/jsonrpc.ts';
import type { Logger } from '../observability/logger.ts';
import { type SpawnSpec, StdioProcess } from './process.ts';

/** A client session of the bridge (Streamable HTTP or the older HTTP+SSE transport). */
export interface ClientSession {
  readonly id: string;
  readonly userId: string;
  /** `capabilities` from the client's initialize; undefined before it. */
  capabilities: Record<string, unknown> | undefined;
  /** Epoch ms, by the connection's clock, of the last message from or to this session. */
  lastActive: number;
  /**
   * Sends a message to the client. `relatedRequestId` (the client's own id of a request in flight)
   * puts it on that request's response stream.
   */
  deliver(message: JSONRPCMessage, relatedRequestId?: RequestId): void;
  /** True when the client has a stream open for messages unrelated to a request (GET stream, legacy SSE). */
  canReceiveUnsolicited(): boolean;
}

/** How a process is started; supplied by the supervisor (per-user environment, the process cap). */
export interface ProcessLauncher {
  /** The command and environment for a new process, and when its IdP token expires (epoch seconds). */
  spawnSpec(): Promise<{ spec: SpawnSpec; tokenExpiresAt?: number }>;
  /** Takes a process slot or throws a JsonRpcFailure (cap reached). */
  acquireSlot(): void;
  releaseSlot(): void;
}

export interface ConnectionOptions {
  name: string;
  userId?: string;
  logger: Logger;
  launcher: ProcessLauncher;
  startTimeoutMs: number;
  stopGraceMs: number;
  backoff: { initialMs: number; maxMs: number };
  /** Recycle a process whose IdP token expires within this many ms (0: only once expired). */
  recycleBeforeExpiryMs: number;
  /**
   * Stamps activity and decides idleness, restart backoff and IdP-token recycling (the system clock by
   * default); the supervisor passes its own, so the sessions and sweeps of one server share it.
   */
  clock?: Clock;
}

interface PendingRequest {
  session: ClientSession;
  clientId: RequestId;
  /** The client's own progress token, when it asked for progress. */
  clientToken?: string | number;
}

interface QueuedMessage {
  session: ClientSession;
  message: JSONRPCMessage;
}

/** What the bridge declares to each process: every client feature it can route to some session. */
const BRIDGE_CLIENT_CAPABILITIES = { sampling: {}, elicitation: {}, roots: { listChanged: true } };
const BRIDGE_CLIENT_INFO = { name: 'mcp-oauth-gateway', version: '0.1.0' };
/** A process that ran this long before crashing starts the backoff from the beginning again. */
const STABLE_AFTER_MS = 60_000;
/** Requests are not held longer than this for a restart; beyond it they get an error at once. */
const MAX_QUEUE_WAIT_MS = 5_000;

/** Which client capability a server-to-client request needs (MCP Client features). */
const NEEDED_CAPABILITY: Record<string, string> = {
  'sampling/createMessage': 'sampling',
  'elicitation/create': 'elicitation',
  'roots/list': 'roots',
};

export class StdioServerConnection {
  readonly #options: ConnectionOptions;
  readonly #log: Logger;
  readonly sessions = new Set<ClientSession>();
  #state: 'stopped' | 'starting' | 'ready' | 'closed' = 'stopped';
  #process: StdioProcess | undefined;
  #initResult: Record<string, unknown> | undefined;
  #initWaiter: { id: number; resolve: (result: Record<string, unknown>) => void; reject: (error: Error) => void } | undefined;
  #queue: QueuedMessage[] = [];
  readonly #pending = new Map<number, PendingRequest>();
  /** `<session id>\0<client id key>` → process-side id, for cancellation. */
  readonly #byClient = new Map<string, number>();
  /** Requests from the process awaiting a client's answer: process id key → session. */
  readonly #serverRequests = new Map<string, ClientSession>();
  #nextId = 1;
  #failures = 0;
  #notBefore = 0;
  #slotHeld = false;
  #tokenExpiresAt: number | undefined;
  #recyclePending = false;
  #lastActivity: number;
  /** The clock this connection, and the sessions attached to it, stamp activity with. */
  readonly clock: Clock;

  constructor(options: ConnectionOptions) {
    this.#options = options;
    this.#log = options.logger;
    this.clock = options.clock ?? systemClock;
    this.#lastActivity = this.clock.now();
  }

  /** Pid of the running process, if any (tests, logs). */
  get pid(): number | undefined {
    return this.#state === 'ready' ? this.#process?.pid : undefined;
  }

  get running(): boolean {
    return this.#process !== undefined;
  }

  /** Epoch ms of the last message in either direction. */
  get lastActivity(): number {
    return this.#lastActivity;
  }

  /** True when nothing is in flight: the process may be stopped without anyone noticing. */
  get quiet(): boolean {
    return this.#pending.size === 0 && this.#queue.length === 0 && this.#serverRequests.size === 0 && this.#state !== 'starting';
  }

  attach(session: ClientSession): void {
    this.sessions.add(session);
  }

  /** The session is gone: its requests in flight are cancelled, its unanswered server requests refused. */
  detach(session: ClientSession): void {
    if (!this.sessions.delete(session)) return;
    this.#queue = this.#queue.filter((item) => item.session !== session);
    for (const [childId, pending] of this.#pending) {
      if (pending.session !== session) continue;
      this.#pending.delete(childId);
      this.#process?.send({
        jsonrpc: '2.0',
        method: 'notifications/cancelled',
        params: { requestId: childId, reason: 'The client session ended.' },
      } as JSONRPCMessage);
    }
    for (const key of [...this.#byClient.keys()]) if (key.startsWith(`${session.id}\0`)) this.#byClient.delete(key);
    for (const [key, owner] of this.#serverRequests) {
      if (owner !== session) continue;
      this.#serverRequests.delete(key);
      const id = key.startsWith('n') ? Number(key.slice(1)) : key.slice(1);
      this.#process?.send(errorResponse(id, JsonRpcCode.INTERNAL_ERROR, 'The client session ended.'));
    }
    this.#maybeRecycle();
  }

  /** A message from a client session. Never throws; failures become JSON-RPC errors to the session. */
  fromClient(session: ClientSession, message: JSONRPCMessage): void {
    const now = this.clock.now();
    session.lastActive = now;
    this.#lastActivity = now;
    if (isNotification(message)) {
      if (message.method === 'notifications/initialized') return; // the process was initialized once, by the bridge
      if (message.method === 'notifications/cancelled') {
        this.#cancelFromClient(session, message);
        return;
      }
    }
    if (isResponse(message)) {
      this.#answerFromClient(session, message);
      return;
    }
    if (this.#state === 'ready' && this.#process && !this.#recycleDue(message)) {
      this.#write(session, message);
      return;
    }
    if (this.#state !== 'ready' && this.#notBefore - now > MAX_QUEUE_WAIT_MS) {
      this.#refuse(
        session,
        message,
        unavailable(
          ErrorCode.STDIO_RESTARTING,
          `MCP server "${this.#options.name}" is restarting after a crash; try again in ${Math.ceil((this.#notBefore - now) / 1000)} s`,
        ),
      );
      return;
    }
    this.#queue.push({ session, message });
    this.#start();
  }

  /** Stops the process when nothing is in flight (idle timeout). Sessions stay; the next request starts a new one. */
  async stopIfQuiet(): Promise<boolean> {
    if (this.#state !== 'ready' || !this.quiet || !this.#process) return false;
    const proc = this.#process;
    this.#process = undefined;
    this.#state = 'stopped';
    this.#releaseSlot();
    this.#log.info(
      { event: 'stdio.process_idle_stopped', server: this.#options.name, userId: this.#options.userId, pid: proc.pid },
      'idle stdio server process stopped',
    );
    await proc.stop(this.#options.stopGraceMs);
    return true;
  }

  /** Stops the process for good and fails whatever waits. */
  async close(): Promise<void> {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    const proc = this.#process;
    this.#process = undefined;
    const shuttingDown = unavailable(ErrorCode.STDIO_SHUTTING_DOWN, 'The gateway is shutting down.');
    this.#failAll(shuttingDown);
    this.#initWaiter?.reject(shuttingDown);
    this.#releaseSlot();
    if (proc) await proc.stop(this.#options.stopGraceMs);
  }

  // ---- process lifecycle ----

  #start(): void {
    if (this.#state !== 'stopped') return;
    this.#state = 'starting';
    void this.#launch();
  }

  async #launch(): Promise<void> {
    let proc: StdioProcess | undefined;
    try {
      // The backoff is decided on the clock but waited out on a real timer: a process cannot start in
      // the past. A test that moves the clock past the backoff first starts the next process at once.
      const wait = this.#notBefore - this.clock.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      if (this.#state !== 'starting') return;
      if (!this.#slotHeld) {
        this.#options.launcher.acquireSlot();
        this.#slotHeld = true;
      }
      const { spec, tokenExpiresAt } = await this.#options.launcher.spawnSpec();
      if (this.#state !== 'starting') return;
      const started = new StdioProcess(spec, {
        name: this.#options.name,
        userId: this.#options.userId,
        logger: this.#log,
        clock: this.clock,
        onMessage: (message) => this.#fromProcess(started, message),
        onExit: (info) => this.#onExit(started, info),
      });
      proc = started;
      this.#process = started;
      const result = await this.#initialize(started);
      if (this.#state !== 'starting' || this.#process !== started) return;
      started.send({ jsonrpc: '2.0', method: 'notifications/initialized' } as JSONRPCMessage);
      this.#initResult = result;
      this.#tokenExpiresAt = tokenExpiresAt;
      this.#recyclePending = false;
      this.#state = 'ready';
      this.#log.info(
        { event: 'stdio.process_started', server: this.#options.name, userId: this.#options.userId, pid: started.pid, protocolVersion: result.protocolVersion },
        'stdio server process started',
      );
      this.#flushQueue();
    } catch (error) {
      if (this.#state !== 'starting') return;
      const failure =
        error instanceof JsonRpcFailure ? error : unavailable(ErrorCode.STDIO_START_FAILED, `MCP server "${this.#options.name}" could not be started`, error);
      this.#log.warn(
        { event: 'stdio.process_start_failed', server: this.#options.name, userId: this.#options.userId, err: error },
        'stdio server process could not be started',
      );
      if (proc) {
        this.#process = undefined;
        void proc.stop(this.#options.stopGraceMs);
      }
      this.#state = 'stopped';
      // A refused slot or token is not a crash: the next request may simply try again.
      if (!(error instanceof JsonRpcFailure)) this.#scheduleBackoff(0);
      this.#releaseSlot();
      const queued = this.#queue;
      this.#queue = [];
      for (const item of queued) this.#refuse(item.session, item.message, failure);
    }
  }

  /** Sends `initialize` and waits for its result (MCP Lifecycle, Initialization). */
  #initialize(proc: StdioProcess): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      const id = this.#nextId++;
      const timer = setTimeout(() => {
        this.#initWaiter = undefined;
        reject(new GatewayError(ErrorCode.STDIO_START_FAILED, `no initialize result within ${this.#options.startTimeoutMs} ms`));
      }, this.#options.startTimeoutMs);
      this.#initWaiter = {
        id,
        resolve: (result) => {
          clearTimeout(timer);
          this.#initWaiter = undefined;
          resolve(result);
        },
        reject: (error) => {
          clearTimeout(timer);
          this.#initWaiter = undefined;
          reject(error);
        },
      };
      proc.send({
        jsonrpc: '2.0',
        id,
        method: 'initialize',
        params: { protocolVersion: LATEST_PROTOCOL_VERSION, capabilities: BRIDGE_CLIENT_CAPABILITIES, clientInfo: BRIDGE_CLIENT_INFO },
      } as JSONRPCMessage);
    });
  }

  #onExit(proc: StdioProcess, info: { code: number | null; signal: NodeJS.Signals | null; error?: Error; requested: boolean }): void {
    if (proc !== this.#process) return; // a process already replaced (recycled, idle-stopped)
    this.#process = undefined;
    const detail = { server: this.#options.name, userId: this.#options.userId, pid: proc.pid, code: info.code, signal: info.signal, err: info.error };
    if (this.#initWaiter) {
      this.#initWaiter.reject(
        new GatewayError(ErrorCode.STDIO_START_FAILED, `the process exited during initialize (code ${info.code}, signal ${info.signal})`, {
          cause: info.error,
        }),
      );
      return; // #launch reports and backs off
    }
    if (info.requested || this.#state === 'closed') return;
    this.#log.warn({ event: 'stdio.process_crashed', ...detail }, 'stdio server process exited unexpectedly; restarting with backoff');
    this.#state = 'stopped';
    this.#failAll(unavailable(ErrorCode.STDIO_PROCESS_EXITED, `MCP server "${this.#options.name}" exited unexpectedly; it is being restarted`));
    this.#scheduleBackoff(this.clock.now() - proc.startedAt);
    // Restart at once (after the backoff) when someone is connected: notifications resume.
    if (this.sessions.size > 0) this.#start();
    else this.#releaseSlot();
  }

  #scheduleBackoff(livedMs: number): void {
    if (livedMs >= STABLE_AFTER_MS) this.#failures = 0;
    const { initialMs, maxMs } = this.#options.backoff;
    const delay = Math.min(maxMs, initialMs * 2 ** this.#failures);
    this.#failures++;
    this.#notBefore = this.clock.now() + delay;
  }

  #releaseSlot(): void {
    if (!this.#slotHeld) return;
    this.#slotHeld = false;
    this.#options.launcher.releaseSlot();
  }

  /** The process's token expires soon: replace it once nothing is in flight (its environment cannot change). */
  #recycleDue(message: JSONRPCMessage): boolean {
    const expiresAt = this.#tokenExpiresAt;
    if (expiresAt === undefined || !isRequest(message)) return false;
    if (expiresAt * 1000 - this.#options.recycleBeforeExpiryMs > this.clock.now()) return false;
    if (this.#pending.size > 0 || this.#serverRequests.size > 0) {
      this.#recyclePending = true;
      return false; // the old process serves this request; the switch happens when it is quiet
    }
    this.#recycle();
    return true;
  }

  #maybeRecycle(): void {
    if (this.#recyclePending && this.#state === 'ready' && this.#pending.size === 0 && this.#serverRequests.size === 0) this.#recycle();
  }

  #recycle(): void {
    const old = this.#process;
    this.#process = undefined;
    this.#recyclePending = false;
    this.#tokenExpiresAt = undefined;
    this.#state = 'stopped';
    this.#log.info(
      { event: 'stdio.process_recycled', server: this.#options.name, userId: this.#options.userId, pid: old?.pid },
      'IdP token about to expire: replacing the stdio server process',
    );
    if (old) void old.stop(this.#options.stopGraceMs);
    this.#start();
  }

  // ---- client → process ----

  #flushQueue(): void {
    const queued = this.#queue;
    this.#queue = [];
    for (const item of queued) {
      if (this.#state !== 'ready') {
        this.#queue.push(item);
        continue;
      }
      this.#write(item.session, item.message);
    }
  }

  #write(session: ClientSession, message: JSONRPCMessage): void {
    const proc = this.#process!;
    if (!isRequest(message)) {
      proc.send(message);
      return;
    }
    if (message.method === 'initialize') {
      this.#answerInitialize(session, message);
      return;
    }
    const childId = this.#nextId++;
    let params = message.params;
    const meta = params?._meta as Record<string, unknown> | undefined;
    const clientToken = meta?.progressToken as string | number | undefined;
    // Progress tokens must be unique across the process's active requests (MCP Progress); clients
    // reuse their request ids as tokens, so each one is replaced by the process-side request id.
    if (clientToken !== undefined) params = { ...params, _meta: { ...meta, progressToken: childId } };
    this.#pending.set(childId, { session, clientId: message.id, clientToken });
    this.#byClient.set(`${session.id}\0${idKey(message.id)}`, childId);
    const sent = proc.send({ ...message, id: childId, ...(params === undefined ? {} : { params }) } as JSONRPCMessage);
    if (!sent) {
      this.#pending.delete(childId);
      session.deliver(errorResponse(message.id, JsonRpcCode.SERVER_UNAVAILABLE, `MCP server "${this.#options.name}" is not running`), message.id);
    }
  }

  /**
   * The session's own initialize, answered from the process's result. Version negotiation (MCP
   * Lifecycle): the client's version when the SDK knows it and the process speaks it or a later one
   * (later revisions only add optional fields); otherwise the process's version, which the client
   * may refuse.
   */
  #answerInitialize(session: ClientSession, message: JsonRpcRequest): void {
    const result = this.#initResult!;
    const requested = message.params?.protocolVersion;
    const serverVersion = String(result.protocolVersion);
    const version = typeof requested === 'string' && SUPPORTED_PROTOCOL_VERSIONS.includes(requested) && requested <= serverVersion ? requested : serverVersion;
    const capabilities = message.params?.capabilities;
    session.capabilities = typeof capabilities === 'object' && capabilities !== null ? (capabilities as Record<string, unknown>) : {};
    session.deliver({ jsonrpc: '2.0', id: message.id, result: { ...result, protocolVersion: version } } as JSONRPCMessage, message.id);
  }

  #cancelFromClient(session: ClientSession, message: JsonRpcNotification): void {
    const requestId = message.params?.requestId as RequestId | undefined;
    if (requestId === undefined) return;
    const key = `${session.id}\0${idKey(requestId)}`;
    const childId = this.#byClient.get(key);
    if (childId === undefined) {
      // Still queued: it never reached the process.
      this.#queue = this.#queue.filter((item) => !(item.session === session && isRequest(item.message) && item.message.id === requestId));
      return;
    }
    this.#byClient.delete(key);
    // MCP Cancellation: the sender ignores a response that arrives later, so it is dropped here.
    this.#pending.delete(childId);
    this.#process?.send({ ...message, params: { ...message.params, requestId: childId } } as JSONRPCMessage);
    this.#maybeRecycle();
  }

  #answerFromClient(session: ClientSession, message: JsonRpcResponse): void {
    if (message.id === null) return;
    const key = idKey(message.id);
    if (this.#serverRequests.get(key) !== session) {
      if (this.#log.isLevelEnabled('debug'))
        this.#log.debug({ server: this.#options.name, session: session.id }, 'response to an unknown server request dropped');
      return;
    }
    this.#serverRequests.delete(key);
    this.#process?.send(message as JSONRPCMessage);
    this.#maybeRecycle();
  }

  #refuse(session: ClientSession, message: JSONRPCMessage, error: JsonRpcFailure): void {
    if (isRequest(message)) session.deliver(errorResponse(message.id, error.rpcCode, error.message), message.id);
  }

  /** Fails every request in flight or queued (process gone); server requests are forgotten. */
  #failAll(error: JsonRpcFailure): void {
    for (const pending of this.#pending.values()) pending.session.deliver(errorResponse(pending.clientId, error.rpcCode, error.message), pending.clientId);
    this.#pending.clear();
    this.#byClient.clear();
    this.#serverRequests.clear();
    if (this.#state === 'closed') {
      const queued = this.#queue;
      this.#queue = [];
      for (const item of queued) this.#refuse(item.session, item.message, error);
    }
  }

  // ---- process → clients ----

  #fromProcess(proc: StdioProcess, message: JSONRPCMessage): void {
    if (proc !== this.#process) return;
    this.#lastActivity = this.clock.now();
    if (isResponse(message)) {
      const id = message.id;
      if (this.#initWaiter && id === this.#initWaiter.id) {
        if (message.error) this.#initWaiter.reject(new GatewayError(ErrorCode.STDIO_START_FAILED, `initialize failed: ${message.error.message}`));
        else this.#initWaiter.resolve((message.result ?? {}) as Record<string, unknown>);
        return;
      }
      const pending = typeof id === 'number' ? this.#pending.get(id) : undefined;
      if (pending === undefined) return; // cancelled, or its session ended
      this.#pending.delete(id as number);
      this.#byClient.delete(`${pending.session.id}\0${idKey(pending.clientId)}`);
      pending.session.lastActive = this.#lastActivity;
      pending.session.deliver({ ...message, id: pending.clientId } as JSONRPCMessage, pending.clientId);
      this.#maybeRecycle();
      return;
    }
    if (isRequest(message)) {
      this.#requestFromProcess(proc, message);
      return;
    }
    const notification = message as JsonRpcNotification;
    if (notification.method === 'notifications/progress') {
      const token = notification.params?.progressToken;
      const pending = typeof token === 'number' ? this.#pending.get(token) : undefined;
      if (pending?.clientToken === undefined) return;
      pending.session.deliver({ ...notification, params: { ...notification.params, progressToken: pending.clientToken } } as JSONRPCMessage, pending.clientId);
      return;
    }
    if (notification.method === 'notifications/cancelled') {
      const requestId = notification.params?.requestId as RequestId | undefined;
      const owner = requestId === undefined ? undefined : this.#serverRequests.get(idKey(requestId));
      if (owner) {
        this.#serverRequests.delete(idKey(requestId!));
        this.#deliverUnsolicited(owner, message);
        this.#maybeRecycle();
      }
      return;
    }
    // list_changed, resources/updated, logging messages: everyone connected to this process.
    for (const session of this.sessions) this.#deliverUnsolicited(session, message);
  }

  #requestFromProcess(proc: StdioProcess, message: JsonRpcRequest): void {
    if (message.method === 'ping') {
      // MCP Ping: the bridge is the process's client and answers for itself.
      proc.send({ jsonrpc: '2.0', id: message.id, result: {} } as JSONRPCMessage);
      return;
    }
    const needed = NEEDED_CAPABILITY[message.method];
    const capable = (session: ClientSession): boolean => needed === undefined || session.capabilities?.[needed] !== undefined;
    // The session whose request is in flight most recently: the server asks on behalf of that call.
    let target: ClientSession | undefined;
    let related: RequestId | undefined;
    for (const pending of this.#pending.values()) {
      if (capable(pending.session)) {
        target = pending.session;
        related = pending.clientId;
      }
    }
    if (target === undefined) {
      for (const session of this.sessions) {
        if (capable(session) && session.canReceiveUnsolicited() && (target === undefined || session.lastActive > target.lastActive)) target = session;
      }
    }
    if (target === undefined) {
      proc.send(errorResponse(message.id, JsonRpcCode.METHOD_NOT_FOUND, `No connected client can answer ${message.method}`));
      return;
    }
    this.#serverRequests.set(idKey(message.id), target);
    target.deliver(message as JSONRPCMessage, related);
  }

  #deliverUnsolicited(session: ClientSession, message: JSONRPCMessage): void {
    if (session.canReceiveUnsolicited()) {
      session.deliver(message);
      return;
    }
    // No stream of its own: ride on the session's latest request stream, if any.
    let related: RequestId | undefined;
    for (const pending of this.#pending.values()) if (pending.session === session) related = pending.clientId;
    if (related !== undefined) session.deliver(message, related);
  }
}

/** The server cannot answer now (JSON-RPC -32000); `code` says why, for logs and tests. */
function unavailable(code: ErrorCodeValue, message: string, cause?: unknown): JsonRpcFailure {
  return new JsonRpcFailure(code, JsonRpcCode.SERVER_UNAVAILABLE, message, cause === undefined ? undefined : { cause });
}
