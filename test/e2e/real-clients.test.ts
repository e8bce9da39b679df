/**
 * The real client programs, not their wire profiles (docs/clients.md): Codex CLI, Claude Code,
 * Gemini CLI, the MCP Inspector CLI (DCR and CIMD) and mcp-remote, each logging in to the embedded
 * default (the demo MCP server and the local demo account) as a new user would, with no model
 * behind them. The browser step is headless Chromium, reached the way the programs reach a browser
 * (`$BROWSER`, directly or through `xdg-open`: test/support/real-clients-browser.ts); programs whose
 * login needs a terminal run in tmux. Each test checks that the program itself reports the server
 * connected with its tools, then the gateway's audit events: one registration, one consent, one
 * sign-in, one code exchange, and no refresh and no revocation. That last part is what 300 s access
 * tokens broke: Gemini CLI and Claude Code refresh a token that expires within 5 minutes, so every
 * request refreshed, and Gemini's two refreshes 1 ms apart revoked the grant.
 *
 * Programs are pinned and installed on first use (test/support/real-clients.ts); one that cannot be
 * installed skips with npm's reason. Codex and Claude Code use their own metadata documents on
 * chatgpt.com and claude.ai as client_id when the gateway offers CIMD; a test cannot fetch those, so
 * their gateway turns CIMD off and they register with DCR, as they do with any server without CIMD.
 *
 * To see a test fail when what it depends on is broken, give the gateway other settings:
 *   REAL_CLIENTS_GATEWAY_CONFIG='{"tokens":{"accessTokenTtl":300,"refreshReuseGraceSeconds":0}}' \
 *     npx node --test --test-name-pattern=Gemini test/e2e/real-clients.test.ts
 */

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, type TestContext, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { type RunningGateway, startGateway } from '../../src/app.ts';
import { configSchema } from '../../src/config/schema.ts';
import { startCimdHost } from '../support/cimd-host.ts';
import { type LogLine, LogWatch } from '../support/log-watch.ts';
import { freePort } from '../support/ports.ts';
import {
  clientEnv,
  installRealClient,
  REAL_CLIENTS,
  type RealClientName,
  type RecordedRequest,
  run,
  startRecorder,
  Terminal,
  tmuxAvailable,
} from '../support/real-clients.ts';
import { type LoginVisit, ScriptedBrowser } from '../support/real-clients-browser.ts';
import { createTestCa, opensslAvailable } from '../support/tls.ts';

const MCP_REMOTE = join(import.meta.dirname, '../../node_modules/mcp-remote/dist/proxy.js');
const DEMO_TOOLS = ['echo', 'whoami'];

interface EmbeddedDefault {
  issuer: string;
  mcpUrl: string;
  password: string;
  logs: LogWatch;
  /** Every request the program (and the browser) made, in order, through the recorder. */
  requests: RecordedRequest[];
  close(): Promise<void>;
}

/** `npm start` with no configuration, plus `overrides` (and REAL_CLIENTS_GATEWAY_CONFIG, to break things on purpose). */
async function startEmbeddedDefault(dir: string, overrides: Record<string, unknown> = {}): Promise<EmbeddedDefault> {
  const port = await freePort();
  const recorder = await startRecorder(port);
  const issuer = `http://localhost:${recorder.port}`;
  const logs = new LogWatch('info');
  const announced: string[] = [];
  const forced = process.env.REAL_CLIENTS_GATEWAY_CONFIG ? (JSON.parse(process.env.REAL_CLIENTS_GATEWAY_CONFIG) as Record<string, unknown>) : {};
  const dataDir = join(dir, 'gateway-data');
  await mkdir(dataDir, { recursive: true });
  const gateway: RunningGateway = await startGateway(configSchema.parse({ publicUrl: issuer, listen: { port }, dataDir, ...overrides, ...forced }), {
    logger: logs.logger,
    announce: (line) => announced.push(line),
  });
  const password = /password: (\S+)/.exec(announced.join('\n'))?.[1];
  assert.ok(password, 'the embedded default announces the demo password');
  return {
    issuer,
    mcpUrl: `${issuer}/mcp`,
    password,
    logs,
    requests: recorder.requests,
    close: async () => {
      await recorder.close();
      await gateway.close();
    },
  };
}

/**
 * How the program found the authorization server: its requests before it registered (or, with
 * CIMD, before /authorize), as "METHOD path status", without the query.
 */
function discovery(gateway: EmbeddedDefault): string[] {
  const end = gateway.requests.findIndex((request) => request.path.startsWith('/register') || request.path.startsWith('/authorize'));
  return gateway.requests.slice(0, end < 0 ? undefined : end).map((request) => `${request.method} ${request.path.split('?')[0]} ${request.status}`);
}

const byEvent = (logs: LogWatch, event: string): LogLine[] => logs.lines.filter((line) => line.event === event);

/**
 * The audit trail of one login and a tool listing: the registration (DCR) or none (CIMD), consent,
 * the demo sign-in, one code exchange; then no refresh (a 900 s token is fresh for ten minutes even
 * to clients that refresh 5 minutes early), nothing refused and nothing revoked.
 */
function assertOneLogin(gateway: EmbeddedDefault, expected: { clientId?: string; clientName?: RegExp; tokenResource: 'sent' | 'absent' }): string {
  const { logs } = gateway;
  const registered = byEvent(logs, 'client.registered');
  let clientId = expected.clientId;
  if (expected.clientName) {
    assert.equal(registered.length, 1, `one registration: ${JSON.stringify(registered)}`);
    assert.match(String(registered[0]!.clientName), expected.clientName);
    clientId = String(registered[0]!.clientId);
  } else {
    assert.deepEqual(registered, [], 'a CIMD client does not register');
  }
  const ofClient = (event: string) => byEvent(logs, event).filter((line) => line.clientId === clientId);
  assert.equal(ofClient('consent.approved').length, 1, 'one consent');
  assert.equal(byEvent(logs, 'local.signin.succeeded').length, 1, 'one sign-in with the demo account');
  assert.equal(ofClient('login.succeeded').length, 1);
  const issued = ofClient('token.issued');
  assert.deepEqual(
    issued.map((line) => line.grantType),
    ['authorization_code'],
    'one code exchange and no refresh: the access token was not treated as expired on arrival',
  );
  assert.equal(issued[0]!.audience, gateway.mcpUrl, 'the access token is for the demo MCP server');
  assert.equal(issued[0]!.requestedResource, expected.tokenResource === 'sent' ? gateway.mcpUrl : undefined, 'resource on the code exchange');
  assert.deepEqual(byEvent(logs, 'token.refused'), [], 'no token request refused');
  assert.deepEqual(byEvent(logs, 'grant.revoked'), [], 'no grant revoked');
  return clientId!;
}

/** The discovery steps, in this order (others may come between): what docs/clients.md says each program does. */
function assertDiscovers(gateway: EmbeddedDefault, steps: string[]): void {
  const seen = discovery(gateway);
  let at = 0;
  for (const step of seen) if (step === steps[at]) at++;
  assert.equal(at, steps.length, `discovery ${JSON.stringify(seen)} should contain, in order, ${JSON.stringify(steps)}`);
}

const PRM = 'GET /.well-known/oauth-protected-resource/mcp 200';
const AS_METADATA = 'GET /.well-known/oauth-authorization-server 200';

/** The common shape of what each program sent to /authorize (PKCE S256, `resource` = the MCP URL). */
function assertAuthorizationRequest(visit: LoginVisit, gateway: EmbeddedDefault, redirectUri: RegExp): void {
  const params = visit.authorizationUrl.searchParams;
  assert.equal(visit.authorizationUrl.origin + visit.authorizationUrl.pathname, `${gateway.issuer}/authorize`);
  assert.equal(params.get('code_challenge_method'), 'S256');
  assert.equal(params.get('resource'), gateway.mcpUrl, 'resource: the MCP URL, from Protected Resource Metadata');
  assert.match(params.get('redirect_uri') ?? '', redirectUri);
  assert.ok(visit.callbackUrl.searchParams.get('code'), 'the program received a code on its own loopback callback');
  assert.equal(visit.callbackUrl.searchParams.get('iss'), gateway.issuer, 'RFC 9207 iss');
}

/** One install per program and run, started for all of them at once (the first run downloads them). */
const installs = new Map<RealClientName, ReturnType<typeof installRealClient>>();
function installing(name: RealClientName): ReturnType<typeof installRealClient> {
  let install = installs.get(name);
  if (!install) {
    install = installRealClient(name);
    installs.set(name, install);
  }
  return install;
}

interface Setup {
  dir: string;
  home: string;
  gateway: EmbeddedDefault;
  browser: ScriptedBrowser;
}

/** Installs the program and starts a fresh gateway and browser for one test; undefined when skipped. */
async function setUp(
  t: TestContext,
  root: string,
  name: RealClientName | 'mcp-remote',
  gatewayOverrides: Record<string, unknown> = {},
): Promise<(Setup & { bin: string }) | undefined> {
  let bin = MCP_REMOTE;
  if (name === 'mcp-remote') {
    if (!existsSync(MCP_REMOTE)) return void t.skip('mcp-remote is not installed (npm ci installs it)');
  } else {
    const installed = await installing(name);
    if ('skip' in installed) return void t.skip(installed.skip);
    bin = installed.bin;
  }
  const dir = await mkdtemp(join(root, `${name}-`));
  const home = join(dir, 'home');
  await mkdir(home, { recursive: true });
  const gateway = await startEmbeddedDefault(dir, gatewayOverrides);
  const browser = await ScriptedBrowser.start(dir, { username: 'demo', password: gateway.password });
  if (typeof browser === 'string') {
    await gateway.close();
    return void t.skip(browser);
  }
  t.after(async () => {
    await browser.close();
    await gateway.close();
  });
  return { dir, home, gateway, browser, bin };
}

/** Types a slash command into Gemini CLI's input line and submits it. */
async function typeCommand(terminal: Terminal, command: string): Promise<void> {
  await terminal.type(command);
  await terminal.waitFor(new RegExp(`> ${command.replace(/[/\\^$*+?.()|[\]{}]/g, '\\$&')}`), `gemini shows "${command}" typed`);
  await terminal.press('Escape'); // closes the completion menu, which would otherwise take the Enter
  // A terminal cannot tell Escape from the start of Alt+Enter when the next key follows within
  // milliseconds: the pause is that keyboard protocol's, not a wait for anything to happen.
  await sleep(500);
  await terminal.press('Enter');
}

/** Codex's app server (JSON-RPC over stdio): what Codex itself knows of each MCP server, tools included. */
async function codexServerStatus(bin: string, env: Record<string, string>, cwd: string): Promise<Record<string, unknown>[]> {
  const child = spawn(bin, ['app-server'], { env, cwd, stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  try {
    return await new Promise((resolve, reject) => {
      const deadline = setTimeout(() => reject(new Error(`codex app-server did not answer mcpServerStatus/list:\n${stderr}`)), 60_000);
      let buffered = '';
      child.stdout.on('data', (chunk: Buffer) => {
        buffered += chunk.toString();
        for (let newline = buffered.indexOf('\n'); newline >= 0; newline = buffered.indexOf('\n')) {
          const message = JSON.parse(buffered.slice(0, newline)) as { id?: number; result?: { data: Record<string, unknown>[] }; error?: unknown };
          buffered = buffered.slice(newline + 1);
          if (message.id === 2) {
            clearTimeout(deadline);
            if (message.result) resolve(message.result.data);
            else reject(new Error(`mcpServerStatus/list failed: ${JSON.stringify(message.error)}`));
          }
        }
      });
      child.on('exit', (code) => reject(new Error(`codex app-server exited (${code}):\n${stderr}`)));
      const send = (message: unknown) => child.stdin.write(`${JSON.stringify(message)}\n`);
      send({ id: 1, method: 'initialize', params: { clientInfo: { name: 'mcp-oauth-gateway-tests', version: '1.0.0' } } });
      send({ method: 'initialized' });
      send({ id: 2, method: 'mcpServerStatus/list', params: {} });
    });
  } finally {
    child.kill('SIGKILL'); // our own child, by its handle
  }
}

describe('real MCP client programs log in to the embedded default and list its tools', () => {
  let root: string;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'real-clients-'));
    for (const name of Object.keys(REAL_CLIENTS) as RealClientName[]) installing(name).catch(() => {}); // awaited by each test
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  test('Codex CLI: `codex mcp add --url` logs in by itself (DCR); its app server lists the tools', { timeout: 600_000 }, async (t) => {
    const setup = await setUp(t, root, 'codex', { clientIdMetadataDocuments: { enabled: false } });
    if (!setup) return;
    const { home, gateway, browser, bin } = setup;
    const env = clientEnv(home, browser.script);
    const adding = run(bin, ['mcp', 'add', 'gw', '--url', gateway.mcpUrl], { env, cwd: home, timeoutMs: 120_000 });
    const visit = await browser.nextLogin(() => 'codex mcp add never opened the browser');
    const added = await adding;
    assert.equal(added.code, 0, added.output);
    assert.match(added.output, /Successfully logged in/);
    assertAuthorizationRequest(visit, gateway, /^http:\/\/127\.0\.0\.1:\d+\/callback$/);
    assert.equal(visit.authorizationUrl.searchParams.get('scope'), 'openid offline_access profile email', 'Codex asks for scopes_supported of the AS metadata');

    const listed = await run(bin, ['mcp', 'list'], { env, cwd: home });
    assert.match(listed.stdout, new RegExp(`gw\\s+${gateway.mcpUrl}\\s.*enabled\\s+OAuth`), listed.output);
    const [status] = await codexServerStatus(bin, env, home);
    assert.equal(status?.name, 'gw');
    assert.equal(status?.authStatus, 'oAuth');
    assert.equal(status?.toolsError, null);
    const codexTools = (status?.tools ?? {}) as Record<string, unknown>;
    for (const tool of DEMO_TOOLS) assert.ok(tool in codexTools, `Codex lists ${tool}: ${JSON.stringify(status)}`);

    assertOneLogin(gateway, { clientName: /^Codex$/, tokenResource: 'sent' });
    assertDiscovers(gateway, ['GET /mcp 401', PRM, AS_METADATA]);
    t.diagnostic(`discovery: ${discovery(gateway).join(', ')}`);
  });

  test('Claude Code: `claude mcp login` in a terminal (DCR); `claude -p` reports the server connected with its tools', { timeout: 600_000 }, async (t) => {
    if (!(await tmuxAvailable())) return void t.skip('tmux is not installed (apt-get install tmux)');
    const setup = await setUp(t, root, 'claude', { clientIdMetadataDocuments: { enabled: false } });
    if (!setup) return;
    const { dir, home, gateway, browser, bin } = setup;
    // No update checks, telemetry or other calls home: the test is about the MCP login only.
    const env = clientEnv(home, browser.script, { DISABLE_AUTOUPDATER: '1', CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1' });
    const added = await run(bin, ['mcp', 'add', '--transport', 'http', '--scope', 'user', 'gw', gateway.mcpUrl], { env, cwd: home });
    assert.equal(added.code, 0, added.output);

    const terminal = await Terminal.open(dir, [bin, 'mcp', 'login', 'gw'], env, home);
    t.after(() => terminal.close());
    const visit = await browser.nextLogin(() => 'claude mcp login never opened the browser');
    await terminal.waitFor(/Authenticated with "gw"/, 'claude mcp login');
    assertAuthorizationRequest(visit, gateway, /^http:\/\/localhost:\d+\/callback$/);
    assert.equal(visit.authorizationUrl.searchParams.get('scope'), null, 'Claude Code sends no scope when the PRM lists none');

    const listed = await run(bin, ['mcp', 'list'], { env, cwd: home });
    assert.match(listed.stdout, new RegExp(`gw: ${gateway.mcpUrl} \\(HTTP\\) - ✔ Connected`), listed.output);
    // Print mode announces its tools before it asks a model anything; with no account it then stops.
    const printed = await run(bin, ['-p', 'list your tools', '--output-format', 'stream-json', '--verbose'], { env, cwd: home });
    const init = printed.stdout
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as { type?: string; subtype?: string; tools?: string[]; mcp_servers?: unknown[] })
      .find((message) => message.type === 'system' && message.subtype === 'init');
    assert.ok(init, printed.output);
    assert.deepEqual(init.mcp_servers, [{ name: 'gw', status: 'connected', source: 'user' }]);
    for (const tool of DEMO_TOOLS) assert.ok(init.tools?.includes(`mcp__gw__${tool}`), `Claude Code lists ${tool}: ${init.tools}`);

    assertOneLogin(gateway, { clientName: /^Claude Code \(gw\)$/, tokenResource: 'sent' });
    assertDiscovers(gateway, [PRM, AS_METADATA]);
    t.diagnostic(`discovery: ${discovery(gateway).join(', ')}`);
  });

  /** Gemini CLI's login and listing, against the embedded default with `overrides`. */
  async function geminiLogsIn(t: TestContext, overrides: Record<string, unknown>): Promise<void> {
    if (!(await tmuxAvailable())) return void t.skip('tmux is not installed (apt-get install tmux)');
    const setup = await setUp(t, root, 'gemini', overrides);
    if (!setup) return;
    const { dir, home, gateway, browser, bin } = setup;
    const workdir = join(dir, 'project');
    await mkdir(workdir);
    // Gemini's UI starts only with some model credential chosen; this one is never used (no prompt
    // is sent), it only gets the UI past its sign-in screen.
    const env = clientEnv(home, browser.script, { GEMINI_API_KEY: 'not-a-real-key' });
    const added = await run(bin, ['mcp', 'add', '--scope', 'user', '--transport', 'http', 'gw', gateway.mcpUrl], { env, cwd: workdir });
    assert.equal(added.code, 0, added.output);
    const settingsFile = join(home, '.gemini', 'settings.json');
    const settings = JSON.parse(await readFile(settingsFile, 'utf8')) as Record<string, unknown>;
    await writeFile(settingsFile, JSON.stringify({ ...settings, security: { auth: { selectedType: 'gemini-api-key' } } }));
    // Gemini loads no MCP server in a folder the user has not trusted.
    await writeFile(join(home, '.gemini', 'trustedFolders.json'), JSON.stringify({ [workdir]: 'TRUST_FOLDER' }));

    // Typed once the UI is up, not passed with `-i`: a prompt given on the command line can be read
    // before the slash commands are loaded, and then goes to the model as a question.
    const terminal = await Terminal.open(dir, [bin], env, workdir);
    t.after(() => terminal.close());
    await terminal.waitFor(/Type your message[\s\S]*1 MCP server|1 MCP server[\s\S]*Type your message/, 'gemini ready, with its MCP server configured');
    await typeCommand(terminal, '/mcp auth gw');
    await terminal.waitFor(/Do you want to continue\?/, 'gemini asks before opening the browser');
    await terminal.press('Enter');
    const visit = await browser.nextLogin(() => 'gemini never opened the browser');
    await terminal.waitFor(/Successfully authenticated and reloaded tools for 'gw'/, 'gemini /mcp auth');
    assertAuthorizationRequest(visit, gateway, /^http:\/\/localhost:\d+\/oauth\/callback$/);
    assert.equal(
      visit.authorizationUrl.searchParams.get('scope'),
      'openid offline_access profile email',
      'Gemini asks for scopes_supported of the AS metadata',
    );

    await terminal.waitFor(/Type your message/, 'gemini ready for input again');
    await typeCommand(terminal, '/mcp list');
    const screen = await terminal.waitFor(/gw - Ready \(3 tools\)/, 'gemini /mcp list', { failOn: /gw - Disconnected/ });
    for (const tool of DEMO_TOOLS) assert.match(screen, new RegExp(`mcp_gw_${tool}`));
    const listed = await run(bin, ['mcp', 'list'], { env, cwd: workdir });
    assert.match(listed.output, new RegExp(`✓ gw: ${gateway.mcpUrl} \\(http\\) - Connected`), listed.output);

    assertOneLogin(gateway, { clientName: /^Gemini CLI MCP Client$/, tokenResource: 'sent' });
    // Gemini probes with HEAD and takes the challenge from its answer.
    assertDiscovers(gateway, ['POST /mcp 401', 'HEAD /mcp 401', PRM, AS_METADATA]);
    t.diagnostic(`discovery: ${discovery(gateway).join(', ')}`);
  }

  test('Gemini CLI: `/mcp auth` in its terminal UI (DCR), then `/mcp list` shows the server ready with its tools', { timeout: 600_000 }, (t) =>
    geminiLogsIn(t, {}),
  );

  // Gemini asks for the AS's scopes_supported whatever the server advertises; the server's scopes are
  // added to such a request (src/authorization/request-scope.ts), else its token earned 403s.
  test('Gemini CLI with an MCP server that has scopes: still ready with its tools', { timeout: 600_000 }, (t) =>
    geminiLogsIn(t, { servers: [{ name: 'demo', path: '/mcp', upstream: { builtin: 'demo' }, scopes: ['mcp:tools'] }] }),
  );

  test('MCP Inspector CLI, DCR: `--cli <url> --method tools/list` logs in and prints the tools', { timeout: 600_000 }, async (t) => {
    const setup = await setUp(t, root, 'inspector');
    if (!setup) return;
    const { home, gateway, browser, bin } = setup;
    const callback = `http://127.0.0.1:${await freePort()}/oauth/callback`;
    // Without a terminal the Inspector opens the browser only when told to.
    const env = clientEnv(home, browser.script, { MCP_AUTO_OPEN_ENABLED: 'true', MCP_INSPECTOR_SECRET_STORE: 'memory' });
    const listing = run(bin, ['--cli', gateway.mcpUrl, '--method', 'tools/list', '--callback-url', callback], { env, cwd: home, timeoutMs: 120_000 });
    const visit = await browser.nextLogin(() => 'the Inspector never opened the browser');
    const listed = await listing;
    assert.equal(listed.code, 0, listed.output);
    assertAuthorizationRequest(visit, gateway, new RegExp(`^${callback}$`));
    const tools = (JSON.parse(listed.stdout) as { tools: { name: string }[] }).tools.map((tool) => tool.name);
    for (const tool of DEMO_TOOLS) assert.ok(tools.includes(tool), `the Inspector lists ${tool}: ${tools}`);
    assertOneLogin(gateway, { clientName: /^MCP Inspector$/, tokenResource: 'sent' });
    assertDiscovers(gateway, ['POST /mcp 401', PRM, AS_METADATA]);
    t.diagnostic(`discovery: ${discovery(gateway).join(', ')}`);
  });

  test('MCP Inspector CLI, CIMD: `--client-metadata-url` on a loopback https host; the gateway fetches it', { timeout: 600_000 }, async (t) => {
    if (!opensslAvailable()) return void t.skip('openssl is not installed (the CIMD host needs a test CA)');
    const ca = await createTestCa();
    const cimdHost = await startCimdHost({ tls: ca });
    t.after(() => cimdHost.close());
    const setup = await setUp(t, root, 'inspector', {
      extraCaCertificatesFile: ca.caFile,
      clientIdMetadataDocuments: { allowPrivateAddresses: true },
    });
    if (!setup) return;
    const { home, gateway, browser, bin } = setup;
    const callback = `http://127.0.0.1:${await freePort()}/oauth/callback`;
    // The Inspector's own client metadata (what it sends with DCR), as a document.
    const clientId = cimdHost.document('/inspector/client.json', {
      client_name: 'MCP Inspector',
      client_uri: 'https://github.com/modelcontextprotocol/inspector',
      redirect_uris: [callback],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
      application_type: 'native',
    });
    const env = clientEnv(home, browser.script, { MCP_AUTO_OPEN_ENABLED: 'true', MCP_INSPECTOR_SECRET_STORE: 'memory' });
    const listing = run(bin, ['--cli', gateway.mcpUrl, '--method', 'tools/list', '--callback-url', callback, '--client-metadata-url', clientId], {
      env,
      cwd: home,
      timeoutMs: 120_000,
    });
    const visit = await browser.nextLogin(() => 'the Inspector never opened the browser');
    const listed = await listing;
    assert.equal(listed.code, 0, listed.output);
    assert.equal(visit.authorizationUrl.searchParams.get('client_id'), clientId, 'the document URL is the client_id');
    assertAuthorizationRequest(visit, gateway, new RegExp(`^${callback}$`));
    assert.ok(cimdHost.requestsFor('/inspector/client.json').length >= 1, 'the gateway fetched the document');
    const tools = (JSON.parse(listed.stdout) as { tools: { name: string }[] }).tools.map((tool) => tool.name);
    for (const tool of DEMO_TOOLS) assert.ok(tools.includes(tool), `the Inspector lists ${tool}: ${tools}`);
    assertOneLogin(gateway, { clientId, tokenResource: 'sent' });
    assertDiscovers(gateway, ['POST /mcp 401', PRM, AS_METADATA]);
    t.diagnostic(`discovery: ${discovery(gateway).join(', ')}`);
  });

  test('mcp-remote: registers (DCR), Chromium logs in through xdg-open, and its stdio lists the tools', { timeout: 600_000 }, async (t) => {
    const setup = await setUp(t, root, 'mcp-remote');
    if (!setup) return;
    const { dir, home, gateway, browser, bin } = setup;
    const callbackPort = await freePort();
    // No DISPLAY here: mcp-remote's `open` runs its bundled xdg-open, which without a desktop runs $BROWSER.
    const { DISPLAY: _display, ...env } = clientEnv(home, browser.script, { MCP_REMOTE_CONFIG_DIR: join(dir, 'mcp-auth') });
    const transport = new StdioClientTransport({ command: process.execPath, args: [bin, gateway.mcpUrl, String(callbackPort)], env, stderr: 'pipe' });
    let stderr = '';
    transport.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const client = new Client({ name: 'real-clients-e2e', version: '1.0.0' });
    t.after(() => client.close());
    const connected = client.connect(transport);
    connected.catch(() => {}); // awaited below, with mcp-remote's stderr on failure
    const visit = await browser.nextLogin(() => stderr);
    assertAuthorizationRequest(visit, gateway, new RegExp(`^http://localhost:${callbackPort}/oauth/callback$`));
    await connected.catch((error: Error) => assert.fail(`connecting through mcp-remote failed: ${error.message}\n${stderr}`));
    const tools = (await client.listTools()).tools.map((tool) => tool.name);
    for (const tool of DEMO_TOOLS) assert.ok(tools.includes(tool), `mcp-remote lists ${tool}: ${tools}`);
    assertOneLogin(gateway, { clientName: /^MCP CLI Proxy$/, tokenResource: 'sent' });
    assertDiscovers(gateway, ['GET /mcp 401', PRM, AS_METADATA]);
    t.diagnostic(`discovery: ${discovery(gateway).join(', ')}`);
  });
});
