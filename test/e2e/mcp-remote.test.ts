/**
 * The real `mcp-remote` package (npm, run as a process) against the gateway: it discovers, registers
 * with DCR, opens "the browser" through the `BROWSER` convention, and once the scripted browser has
 * approved consent and signed in upstream, it takes the code on its own loopback callback, exchanges
 * it, and proxies stdio to the gateway. The test drives that stdio with the SDK client.
 *
 * How mcp-remote opens the browser (read from node_modules/mcp-remote/dist): `open(url)` from the
 * `open` package, which on Linux runs its bundled `xdg-open`. With no desktop environment detected
 * (no DISPLAY, no XDG_CURRENT_DESKTOP), xdg-open's generic path runs each entry of `$BROWSER` with the
 * URL as its argument. So `BROWSER` points at a small script that appends the URL to a file here.
 * Its callback listens on 127.0.0.1:<port given as the 2nd positional argument>, path /oauth/callback,
 * announced as http://localhost:<port>/oauth/callback. An http://localhost server URL needs no
 * `--allow-http`. Its state goes to `MCP_REMOTE_CONFIG_DIR` (a temp dir, HOME too).
 */

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { Browser } from '../support/browser.ts';
import { freePort } from '../support/ports.ts';
import { approveAndSignIn, type Stack, startStack } from './stack.ts';

const MCP_REMOTE = join(import.meta.dirname, '../../node_modules/mcp-remote/dist/proxy.js');

/** Waits until the BROWSER script has written a URL (one per line) beyond the first `seen` lines. */
async function nextBrowserUrl(file: string, seen: number, stderr: () => string, timeoutMs = 30_000): Promise<URL> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const lines = existsSync(file) ? (await readFile(file, 'utf8')).split('\n').filter(Boolean) : [];
    if (lines.length > seen) return new URL(lines[seen]!);
    await sleep(100);
  }
  throw new Error(`mcp-remote never opened a browser. Its stderr:\n${stderr()}`);
}

describe('the real mcp-remote, with BROWSER set to a script and the scripted browser completing the login', () => {
  let stack: Stack;
  let dir: string;
  const children: StdioClientTransport[] = [];

  before(async () => {
    stack = await startStack();
    dir = await mkdtemp(join(tmpdir(), 'mcp-remote-e2e-'));
  });
  after(async () => {
    for (const transport of children) {
      await transport.close().catch(() => {});
      const pid = transport.pid;
      if (pid !== null) {
        try {
          process.kill(pid, 'SIGKILL'); // only our own child, by its id; gone already in the normal case
        } catch {}
      }
    }
    await stack?.close();
    await rm(dir, { recursive: true, force: true });
  });

  function spawnMcpRemote(callbackPort: number): { transport: StdioClientTransport; stderr: () => string } {
    const urlsFile = join(dir, 'browser-urls.txt');
    // A minimal environment: no DISPLAY or desktop variables, so xdg-open takes the BROWSER path.
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: join(dir, 'home'),
      MCP_REMOTE_CONFIG_DIR: join(dir, 'mcp-auth'),
      BROWSER: join(dir, 'browser.sh'),
      BROWSER_URLS_FILE: urlsFile,
    };
    const transport = new StdioClientTransport({
      command: process.execPath,
      args: [MCP_REMOTE, stack.mcpUrl(), String(callbackPort), '--auth-timeout', '90'],
      env,
      stderr: 'pipe',
    });
    let log = '';
    transport.stderr?.on('data', (chunk: Buffer) => {
      log += chunk.toString();
    });
    children.push(transport);
    return { transport, stderr: () => log };
  }

  test('mcp-remote registers, the browser logs in, and tools/call echo runs through its stdio', async (t) => {
    if (!existsSync(MCP_REMOTE)) {
      t.skip('mcp-remote is not installed (npm ci installs it)');
      return;
    }
    const browserScript = join(dir, 'browser.sh');
    await writeFile(browserScript, '#!/bin/sh\nprintf \'%s\\n\' "$1" >> "$BROWSER_URLS_FILE"\nexit 0\n');
    await chmod(browserScript, 0o755);
    const urlsFile = join(dir, 'browser-urls.txt');

    const callbackPort = await freePort();
    const { transport, stderr } = spawnMcpRemote(callbackPort);
    const client = new Client({ name: 'mcp-remote-e2e', version: '1.0.0' });
    const connected = client.connect(transport);
    connected.catch(() => {}); // awaited below; a failure is reported there with stderr

    const authorizationUrl = await nextBrowserUrl(urlsFile, 0, stderr);
    assert.equal(authorizationUrl.origin, stack.issuer, "mcp-remote opened the gateway's /authorize");
    assert.equal(authorizationUrl.pathname, '/authorize');
    const redirectUri = authorizationUrl.searchParams.get('redirect_uri')!;
    assert.equal(redirectUri, `http://localhost:${callbackPort}/oauth/callback`);
    assert.equal(authorizationUrl.searchParams.get('resource'), stack.mcpUrl(), 'resource from PRM');
    assert.equal(authorizationUrl.searchParams.get('code_challenge_method'), 'S256');

    const browser = new Browser({ ca: stack.ca.caPem });
    const atCallback = await approveAndSignIn(stack, browser, authorizationUrl, redirectUri);
    assert.ok(atCallback.stopped);
    assert.ok(atCallback.url.searchParams.get('code'));
    // The browser then really loads mcp-remote's own loopback callback.
    const callbackPage = await browser.goto(atCallback.url);
    assert.equal(callbackPage.status, 200, callbackPage.text);
    assert.match(callbackPage.text, /Authorization successful/);
    await browser.close();

    try {
      await connected;
    } catch (error) {
      throw new Error(`connecting through mcp-remote failed: ${(error as Error).message}\n${stderr()}`);
    }
    const tools = await client.listTools();
    assert.ok(
      tools.tools.some((tool) => tool.name === 'echo'),
      stderr(),
    );
    const echo = await client.callTool({ name: 'echo', arguments: { text: 'through mcp-remote' } });
    assert.match(JSON.stringify(echo.content), /through mcp-remote/);
    const whoami = await client.callTool({ name: 'whoami', arguments: {} });
    assert.match(JSON.stringify(whoami.content), /alice@example\.com/, 'the MCP server sees the signed-in user');
    await client.close();

    // A second start reuses the stored tokens: no browser this time.
    const second = spawnMcpRemote(callbackPort);
    const again = new Client({ name: 'mcp-remote-e2e', version: '1.0.0' });
    await again.connect(second.transport);
    const echoAgain = await again.callTool({ name: 'echo', arguments: { text: 'stored tokens' } });
    assert.match(JSON.stringify(echoAgain.content), /stored tokens/);
    await again.close();
    const opened = (await readFile(urlsFile, 'utf8')).split('\n').filter(Boolean);
    assert.equal(opened.length, 1, 'the browser was opened once');
  });
});
