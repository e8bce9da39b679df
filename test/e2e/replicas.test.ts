/**
 * Three gateway processes (started with the CLI) sharing one real Redis and one publicUrl, behind a
 * real nginx balancing round-robin (test/support/replicas.ts), with a real OIDC IdP and the demo MCP
 * server. What replicas must do (docs/storage.md):
 *
 * (a) a full login by the official MCP SDK client whose steps land on different replicas;
 * (b) tokens issued by one replica used and refreshed on the others, one refresh at a time;
 * (c) kill -9 of one replica while clients loop MCP calls and refreshes: nothing issued is lost, and no
 *     client fails except for requests that were in flight to the dead replica;
 * (d) Redis killed (SIGKILL) and restarted on the same data directory (AOF, appendfsync always) under
 *     the same load: every refresh token a client was given still refreshes afterwards.
 *
 * No client is logged out, not even one whose refresh was cut in half by the crash (its token consumed,
 * the new pair never returned): its retry within the grace period rotates again instead of being taken
 * for reuse (src/authorization/refresh-replay.ts, docs/tokens.md). Every worker and every bystander
 * (logged in before the crash, idle during it) keeps a grant that refreshes, so a store that lost data,
 * or a crash that costs a login, fails the test.
 *
 * The load phases wait for events (cycles completed, an outage seen), each with a deadline; nothing
 * sleeps to let time pass.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type DemoServer, startDemoServer } from '../../src/demo/server.ts';
import { Browser } from '../support/browser.ts';
import { connectWithLogin, TestOAuthClientProvider } from '../support/mcp-client.ts';
import { nginxUnavailable } from '../support/nginx.ts';
import { type OidcIdp, startOidcIdp } from '../support/oidc-idp.ts';
import { redisUnavailable } from '../support/redis.ts';
import { type ReplicaSet, startReplicas } from '../support/replicas.ts';
import { createTestCa, createTrustingFetch, type TestCa } from '../support/tls.ts';
import { authorizeAndExchange, mcpInitialize, registerPublicClient, type TokenResponse, tokenRequest } from './oauth.ts';
import { approveAndSignIn, type Stack, USERS } from './stack.ts';

const REPLICAS = 3;
const WORKERS = 4;
/** Clients logged in before a crash that send nothing during it: no crash can excuse losing theirs. */
const BYSTANDERS = 2;

/** The parts of a Stack the OAuth helpers (oauth.ts, stack.ts) use, pointed at nginx or at one replica. */
type StackView = Pick<Stack, 'issuer' | 'idp' | 'ca' | 'mcpUrl'>;

function view(base: string, idp: OidcIdp, ca: TestCa): Stack {
  const partial: StackView = { issuer: base, idp, ca, mcpUrl: (path = '/mcp') => `${base}${path}` };
  return partial as Stack; // the helpers read only these fields
}

/** One outcome of a load request: what it was, when it ran, how it ended. */
interface Outcome {
  kind: 'mcp' | 'refresh';
  startedAt: number;
  endedAt: number;
  /** HTTP status, or 0 when the connection failed. */
  status: number;
  error?: string;
}

/** A client in a loop: an MCP call with its access token, then a refresh, again and again. */
class Worker {
  readonly outcomes: Outcome[] = [];
  cycles = 0;
  /** Its refresh was refused (invalid_grant, invalid_client): a real client would log in again; this one stops. */
  loggedOut = false;
  clientId: string;
  accessToken: string;
  refreshToken: string;
  #running: Promise<void> | undefined;
  #stop = false;

  readonly name: string;
  readonly stack: Stack;

  constructor(name: string, stack: Stack, clientId: string, tokens: TokenResponse) {
    this.name = name;
    this.stack = stack;
    this.clientId = clientId;
    this.accessToken = String(tokens.body.access_token);
    this.refreshToken = String(tokens.body.refresh_token);
  }

  start(): void {
    this.#stop = false;
    this.#running = this.#loop();
  }

  async stop(): Promise<void> {
    this.#stop = true;
    await this.#running;
  }

  async #loop(): Promise<void> {
    while (!this.#stop) {
      await this.#record('mcp', async () => {
        const response = await mcpInitialize(this.stack.mcpUrl(), this.accessToken);
        await response.body?.cancel();
        return { status: response.status };
      });
      await this.#record('refresh', async () => {
        // Not tokenRequest(): a 502 from nginx is an HTML page, and its status is what matters here.
        const response = await fetch(`${this.stack.issuer}/token`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: this.refreshToken, client_id: this.clientId }),
        });
        const body = response.headers.get('content-type')?.includes('json') ? ((await response.json()) as Record<string, unknown>) : {};
        if (response.status === 200) {
          this.accessToken = String(body.access_token);
          this.refreshToken = String(body.refresh_token);
        } else if (response.status === 400 || response.status === 401) {
          // invalid_grant, invalid_client: the tokens or the registration are gone; only a new login helps.
          this.loggedOut = true;
          this.#stop = true;
        }
        return { status: response.status, error: typeof body.error === 'string' ? body.error : undefined };
      });
      this.cycles++;
    }
  }

  async #record(kind: Outcome['kind'], request: () => Promise<{ status: number; error?: string }>): Promise<void> {
    const startedAt = performance.now();
    try {
      const { status, error } = await request();
      this.outcomes.push({ kind, startedAt, endedAt: performance.now(), status, ...(error ? { error } : {}) });
    } catch (error) {
      this.outcomes.push({ kind, startedAt, endedAt: performance.now(), status: 0, error: String(error) });
    }
  }

  /** Its state and last requests, for a timeout's message. */
  describe(): string {
    const last = this.outcomes.slice(-6).map((o) => `${o.kind} ${o.status}${o.error ? ` ${o.error}` : ''} ${Math.round(o.endedAt - o.startedAt)}ms`);
    return `${this.name}: ${this.cycles} cycles, ${this.loggedOut ? 'logged out, ' : ''}last: ${last.join('; ')}`;
  }

  /** Outcomes that were not a success. */
  failures(since = 0): Outcome[] {
    return this.outcomes.filter((outcome) => outcome.startedAt >= since && outcome.status !== 200);
  }
}

/**
 * Polls `condition` until it holds; waiting for what the processes do, with a deadline, never for time.
 * The deadlines are generous (a loaded 2-core machine runs three gateways, Redis, nginx and the
 * clients at once); on a timeout the workers' recent requests say where they were stuck.
 */
async function waitUntil(what: string, condition: () => boolean, workers: Worker[], timeoutMs = 60_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}:\n${workers.map((worker) => worker.describe()).join('\n')}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const skip = redisUnavailable() ?? nginxUnavailable() ?? false;

describe('three replicas sharing Redis behind nginx', { skip }, () => {
  let ca: TestCa;
  let idp: OidcIdp;
  let demo: DemoServer;
  let set: ReplicaSet;
  let publicStack: Stack;
  let trustingFetch: ReturnType<typeof createTrustingFetch>;

  before(async () => {
    ca = await createTestCa();
    demo = await startDemoServer({ host: '127.0.0.1', port: 0 });
    set = await startReplicas({
      count: REPLICAS,
      config: async (publicUrl) => {
        idp = await startOidcIdp({
          clientId: 'mcp-gateway',
          clientSecret: 'idp-app-secret-value-0123456789',
          redirectUris: [`${publicUrl}/callback`],
          users: USERS,
        });
        return {
          extraCaCertificatesFile: ca.caFile,
          identityProviders: [
            { type: 'oidc', id: 'corp', displayName: 'Example Corp SSO', issuer: idp.issuer, clientId: idp.clientId, clientSecret: idp.clientSecret },
          ],
          servers: [{ name: 'tools', path: '/mcp', upstream: { url: demo.url }, scopes: ['mcp:tools'] }],
          log: { level: 'warn' },
        };
      },
    });
    publicStack = view(set.publicUrl, idp, ca);
    trustingFetch = createTrustingFetch(ca.caPem);
  });

  after(async () => {
    await set?.close();
    await idp?.close();
    await demo?.close();
    await trustingFetch?.close();
  });

  test('(a) an SDK client logs in with each step on whichever replica nginx picks', async () => {
    const before = (await set.servedBy()).length;
    const provider = new TestOAuthClientProvider({ mode: 'dcr', clientName: 'Replicas SDK client' });
    const browser = new Browser({ ca: ca.caPem });
    const client = await connectWithLogin({
      mcpUrl: publicStack.mcpUrl(),
      provider,
      fetch: trustingFetch,
      login: async (authorizationUrl) => (await approveAndSignIn(publicStack, browser, authorizationUrl, provider.redirectUrl)).url,
    });
    try {
      const tools = await client.listTools();
      assert.ok(tools.tools.length > 0);
    } finally {
      await client.close();
    }
    const served = (await set.servedBy()).slice(before);
    const stepsOf = (prefix: string) => served.filter((request) => request.path.startsWith(prefix));
    for (const step of ['/register', '/authorize', '/interaction/', '/callback', '/token', '/mcp']) {
      assert.ok(stepsOf(step).length > 0, `the login went through ${step}`);
    }
    const login = served.filter((request) => !request.path.startsWith('/.well-known'));
    assert.equal(new Set(login.map((request) => request.upstream)).size, REPLICAS, `steps spread over every replica: ${JSON.stringify(login)}`);
    // Each step found what the previous one stored on another replica: nothing failed on the way.
    assert.deepEqual(
      served.filter((request) => request.status >= 500),
      [],
    );
  });

  test('(b) tokens issued by one replica are used and refreshed on the others, one refresh at a time', async () => {
    const client = await registerPublicClient(publicStack);
    const tokens = await authorizeAndExchange(publicStack, new Browser({ ca: ca.caPem }), client);
    assert.equal(tokens.status, 200, JSON.stringify(tokens.body));
    const issuedBy = (await set.servedBy()).findLast((request) => request.path === '/token')!.upstream;
    let issuer = set.replicas.findIndex((replica) => replica.address === issuedBy);
    assert.ok(issuer >= 0, `the token request went to a replica: ${issuedBy}`);
    let accessToken = String(tokens.body.access_token);
    let refreshToken = String(tokens.body.refresh_token);
    for (let step = 1; step <= 2 * REPLICAS; step++) {
      const user = (issuer + step) % REPLICAS;
      const call = await mcpInitialize(`${set.pinnedUrl(user)}/mcp`, accessToken);
      assert.equal(call.status, 200, `step ${step}: a token from replica ${issuer} accepted by replica ${user}`);
      await call.body?.cancel();
      const refresher = (issuer + 1) % REPLICAS;
      const refreshed = await tokenRequest(view(set.pinnedUrl(refresher), idp, ca), {
        grant_type: 'refresh_token',
        refresh_token: refreshToken,
        client_id: client.client_id,
      });
      assert.equal(
        refreshed.status,
        200,
        `step ${step}: a refresh token from replica ${issuer} refreshed on replica ${refresher}: ${JSON.stringify(refreshed.body)}`,
      );
      accessToken = String(refreshed.body.access_token);
      refreshToken = String(refreshed.body.refresh_token);
      issuer = refresher;
    }
  });

  /** `count` clients, each logged in through nginx, ready to loop. */
  async function loggedInClients(name: string, count: number): Promise<Worker[]> {
    const workers: Worker[] = [];
    for (let i = 0; i < count; i++) {
      const client = await registerPublicClient(publicStack, `http://127.0.0.1:${5600 + i}/callback`);
      const tokens = await authorizeAndExchange(publicStack, new Browser({ ca: ca.caPem }), client, { username: i % 2 ? 'bob' : 'alice' });
      assert.equal(tokens.status, 200, JSON.stringify(tokens.body));
      workers.push(new Worker(`${name}-${i}`, publicStack, client.client_id, tokens));
    }
    return workers;
  }

  /**
   * After the load: each client's current refresh token still refreshes (one at a time), workers and
   * bystanders (logged in before the crash, silent during it) alike: nobody was logged out.
   */
  async function assertEveryGrantRefreshes(workers: Worker[], bystanders: Worker[]): Promise<void> {
    for (const worker of [...workers, ...bystanders]) {
      assert.equal(worker.loggedOut, false, `${worker.name} was logged out`);
      const response = await tokenRequest(publicStack, { grant_type: 'refresh_token', refresh_token: worker.refreshToken, client_id: worker.clientId });
      assert.equal(response.status, 200, `${worker.name}: its last refresh token still refreshes: ${JSON.stringify(response.body)}`);
    }
  }

  test('(c) kill -9 of one replica under load loses nothing issued; only requests in flight to it fail', async (t) => {
    const workers = await loggedInClients('worker', WORKERS);
    const bystanders = await loggedInClients('bystander', BYSTANDERS);
    const logStart = (await set.servedBy()).length;
    for (const worker of workers) worker.start();
    try {
      await waitUntil('every worker to run 3 cycles', () => workers.every((worker) => worker.cycles >= 3), workers);
      const victim = set.replicas[REPLICAS - 1]!;
      await victim.kill('SIGKILL');
      const cyclesAtKill = workers.map((worker) => worker.cycles);
      await waitUntil(
        'every worker to run 5 cycles after the kill',
        () => workers.every((worker, i) => worker.loggedOut || worker.cycles >= cyclesAtKill[i]! + 5),
        workers,
      );
      for (const worker of workers) await worker.stop();

      const served = (await set.servedBy()).slice(logStart);
      const failed = served.filter((request) => request.status !== 200);
      for (const request of failed) {
        // 502: the request was already sent to the replica when it died (nginx never replays a POST).
        // Nothing else: a refresh the crash cut is retried, and the retry rotates again.
        const inFlight = request.status === 502 && request.upstream.split(', ').at(-1) === victim.address;
        assert.ok(inFlight, `unexpected failure: ${JSON.stringify(request)}`);
      }
      for (const worker of workers) {
        for (const failure of worker.failures()) {
          assert.equal(failure.status, 502, `${worker.name}: ${JSON.stringify(failure)} is not a request in flight to the dead replica`);
        }
      }
      const total = workers.reduce((sum, worker) => sum + worker.outcomes.length, 0);
      const slowest = Math.max(...workers.flatMap((worker) => worker.outcomes.filter((o) => o.kind === 'refresh').map((o) => o.endedAt - o.startedAt)));
      t.diagnostic(
        `${total} requests, ${failed.length} failed (all in flight to the killed replica); slowest refresh ${Math.round(slowest)} ms (a retry may wait up to the dead replica's 5 s claim lease)`,
      );
      await assertEveryGrantRefreshes(workers, bystanders);
    } finally {
      for (const worker of workers) await worker.stop();
    }
  });

  test('(d) Redis killed and restarted under load: every refresh token a client holds still refreshes', async (t) => {
    const workers = await loggedInClients('worker', WORKERS);
    const bystanders = await loggedInClients('bystander', BYSTANDERS);
    for (const worker of workers) worker.start();
    try {
      await waitUntil('every worker to run 3 cycles', () => workers.every((worker) => worker.cycles >= 3), workers);
      const killedAt = performance.now();
      await set.redis.kill();
      await waitUntil('a client to see the outage', () => workers.some((worker) => worker.failures(killedAt).some((f) => f.status === 503)), workers);
      await set.redis.restart();
      const restartedAt = performance.now();
      await waitUntil(
        'every worker to refresh 3 times after the restart',
        () =>
          workers.every(
            (worker) => worker.loggedOut || worker.outcomes.filter((o) => o.kind === 'refresh' && o.status === 200 && o.startedAt > restartedAt).length >= 3,
          ),
        workers,
      );
      for (const worker of workers) await worker.stop();

      let unavailable = 0;
      for (const worker of workers) {
        for (const failure of worker.failures()) {
          // temporarily_unavailable while Redis was down: the client retries with the same token. Nothing
          // else: a refresh the outage cut is retried, and the retry rotates again.
          assert.equal(failure.status, 503, `${worker.name}: ${JSON.stringify(failure)} is not a 503 during the outage`);
          unavailable++;
        }
      }
      const recovery = Math.max(
        ...workers.map(
          (worker) => (worker.outcomes.find((o) => o.kind === 'refresh' && o.status === 200 && o.startedAt > restartedAt)?.endedAt ?? Infinity) - restartedAt,
        ),
      );
      t.diagnostic(`${unavailable} requests answered 503 during the outage; every worker refreshed again within ${Math.round(recovery)} ms of the restart`);
      await assertEveryGrantRefreshes(workers, bystanders);
    } finally {
      for (const worker of workers) await worker.stop();
    }
  });
});
