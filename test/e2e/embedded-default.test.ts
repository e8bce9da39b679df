/**
 * `npm start` with no configuration: SQLite in the data directory, the built-in local provider with a
 * demo user whose password is printed once, in front of the demo MCP server shipped in the repo.
 * An SDK client logs in with that password and calls a tool.
 */

import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type RunningGateway, startGateway } from '../../src/app.ts';
import { configSchema } from '../../src/config/schema.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { Browser } from '../support/browser.ts';
import { connectWithLogin, TestOAuthClientProvider } from '../support/mcp-client.ts';
import { freePort } from '../support/ports.ts';

describe('embedded default (no configuration)', () => {
  let dataDir: string;
  let issuer: string;
  let gateway: RunningGateway;
  const announced: string[] = [];
  const start = async () => {
    const port = await freePort();
    issuer = `http://localhost:${port}`;
    gateway = await startGateway(configSchema.parse({ publicUrl: issuer, listen: { port }, dataDir }), {
      logger: createLogger('silent'),
      announce: (line) => announced.push(line),
    });
  };
  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'mcpgw-default-'));
    await start();
  });
  after(async () => {
    await gateway?.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  test('the demo password is printed once; the demo user logs in with it and calls the demo server', async () => {
    const password = /password: (\S+)/.exec(announced.join('\n'))?.[1];
    assert.ok(password, 'first start announces the demo password');
    const provider = new TestOAuthClientProvider({ mode: 'dcr', clientName: 'Quick-start client' });
    const browser = new Browser();
    const client = await connectWithLogin({
      mcpUrl: `${issuer}/mcp`,
      provider,
      login: async (authorizationUrl) => {
        let page = await browser.goto(authorizationUrl);
        page = await browser.submitForm(page, { button: 'approve' });
        assert.match(page.url.pathname, /^\/sign-in\/local$/);
        const wrong = await browser.submitForm(page, { fields: { username: 'demo', password: 'not-the-password' } });
        assert.equal(wrong.status, 401);
        page = await browser.submitForm(wrong, { fields: { username: 'demo', password }, stopAt: provider.redirectUrl });
        return page.url;
      },
    });
    const whoami = await client.callTool({ name: 'whoami', arguments: {} });
    assert.match(JSON.stringify(whoami.content), /demo@example\.com/);
    await client.close();
  });

  test('a restart keeps the demo user and does not print a new password', async () => {
    await gateway.close();
    announced.length = 0;
    await start();
    assert.ok(!announced.join('\n').includes('password:'), 'shown only once');
    const health = await fetch(`${issuer}/healthz`);
    assert.equal(health.status, 200);
  });
});
