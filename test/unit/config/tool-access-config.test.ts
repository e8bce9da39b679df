/**
 * `servers[].toolAccess` and `scopeDescriptions` as `serve` and `config check` load them: every problem
 * with its key path, and the shapes the gateway then uses.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ConfigError, loadConfig } from '../../../src/config/load.ts';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mcpgw-tool-access-config-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function load(servers: string) {
  const path = join(dir, `config-${Math.random().toString(36).slice(2)}.yaml`);
  await writeFile(
    path,
    `publicUrl: https://mcp.example.com\nidentityProviders:\n  - type: oidc\n    issuer: https://idp.example.com\n    clientId: gateway\nservers:\n${servers}`,
  );
  return loadConfig({ path, env: {} });
}

async function problems(servers: string): Promise<string[]> {
  try {
    await load(servers);
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    return error.problems.map((problem) => `${problem.path}: ${problem.message}`);
  }
  assert.fail('expected the configuration to be rejected');
}

describe('toolAccess configuration', () => {
  test('a valid block loads with its defaults', async () => {
    const config = await load(`  - name: files
    path: /files
    upstream: { url: http://127.0.0.1:3000/mcp }
    scopes: [files]
    scopeDescriptions: { files: Read files, "files:write": Change files }
    toolAccess:
      rules:
        - tools: [read_*]
        - tools: [write_*]
          scopes: ["files:write"]
          access: { groups: [editors] }
`);
    const server = config.servers?.[0];
    assert.equal(server?.toolAccess?.unmatched, 'deny');
    assert.deepEqual(server?.toolAccess?.rules[1]?.access.groups, ['editors']);
    assert.deepEqual(server?.toolAccess?.rules[0]?.prompts, []);
    assert.equal(server?.scopeDescriptions['files:write'], 'Change files');
  });

  test('a forward-auth server, an HTTP+SSE upstream and a description of an unknown scope are refused with their paths', async () => {
    const found = await problems(`  - name: fa
    path: /fa
    upstream: { forwardAuth: true }
    toolAccess: { rules: [{ tools: [x] }] }
  - name: legacy
    path: /legacy
    upstream: { url: http://127.0.0.1:3000/sse, transport: sse }
    toolAccess: { rules: [{ tools: [x] }] }
  - name: described
    path: /described
    upstream: { url: http://127.0.0.1:3000/mcp }
    scopes: [a]
    scopeDescriptions: { a: fine, b: unknown }
`);
    assert.equal(found.length, 3, found.join('\n'));
    assert.match(found[0] ?? '', /^servers\[0\]\.toolAccess: not available for forward-auth servers/);
    assert.match(found[1] ?? '', /^servers\[1\]\.toolAccess: not available for an HTTP\+SSE/);
    assert.match(found[2] ?? '', /^servers\[2\]\.scopeDescriptions\.b: is not a scope of this server/);
  });

  test('a rule naming nothing and an unknown unmatched value are refused', async () => {
    const found = await problems(`  - name: files
    path: /files
    upstream: { url: http://127.0.0.1:3000/mcp }
    toolAccess:
      unmatched: maybe
      rules: [{ scopes: [x] }]
`);
    assert.ok(
      found.some((line) => line.startsWith('servers[0].toolAccess.unmatched')),
      found.join('\n'),
    );
    assert.ok(
      found.some((line) => /^servers\[0\]\.toolAccess\.rules\[0\]: a rule must name/.test(line)),
      found.join('\n'),
    );
  });
});
