/** The `hash-password` and `config check` commands, driven through in-memory streams. */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { Ajv } from 'ajv';
import { runConfigCheck } from '../../../src/cli/config-check.ts';
import { runConfigSchema } from '../../../src/cli/config-print.ts';
import { readLine, runHashPassword } from '../../../src/cli/hash-password.ts';
import { runServe } from '../../../src/cli/serve.ts';
import { ErrorCode } from '../../../src/core/errors.ts';
import { verifyPassword } from '../../../src/idp/passwords.ts';
import { CLI_MAIN, capturedIo } from '../../support/cli.ts';

describe('hash-password', () => {
  test('hashes the first line of a pipe', async () => {
    const io = capturedIo('correct horse battery staple\nsecond line is ignored\n');
    assert.equal(await runHashPassword([], io), 0);
    const hash = io.out().trim();
    assert.match(hash, /^scrypt\$32768\$8\$1\$[^$]+\$[^$]+$/);
    assert.equal(await verifyPassword('correct horse battery staple', hash), true);
    assert.equal(io.err(), '');
  });

  test('does not wait for the end of the input once a line has arrived', async () => {
    const io = capturedIo();
    io.stdin.write('correct horse battery staple\n'); // never ended
    assert.equal(await runHashPassword([], io), 0);
    assert.equal(await verifyPassword('correct horse battery staple', io.out().trim()), true);
  });

  test('accepts input without a final newline, and strips CRLF', async () => {
    const plain = capturedIo('no-newline-password');
    assert.equal(await runHashPassword([], plain), 0);
    assert.equal(await verifyPassword('no-newline-password', plain.out().trim()), true);
    const crlf = capturedIo('windows-password-1\r\n');
    assert.equal(await runHashPassword([], crlf), 0);
    assert.equal(await verifyPassword('windows-password-1', crlf.out().trim()), true);
  });

  test('refuses a password on the command line', async () => {
    const io = capturedIo('ignored\n');
    assert.equal(await runHashPassword(['hunter2'], io), 2);
    assert.equal(io.out(), '');
    assert.match(io.err(), /never from the command line/);
    assert.ok(!io.err().includes('hunter2'));
  });

  test('fails on empty input and warns about short passwords', async () => {
    const empty = capturedIo('');
    assert.equal(await runHashPassword([], empty), 1);
    assert.match(empty.err(), /no password/);
    const blankLine = capturedIo('\n');
    assert.equal(await runHashPassword([], blankLine), 1);
    const short = capturedIo('short\n');
    assert.equal(await runHashPassword([], short), 0);
    assert.match(short.err(), /shorter than 12 characters/);
  });

  test('an option is refused by its name only: a value after = is never echoed', async () => {
    const io = capturedIo('ignored\n');
    assert.equal(await runHashPassword(['--password=hunter2'], io), 2);
    assert.match(io.err().split('\n')[0]!, /--password/);
    assert.ok(!io.err().includes('hunter2'));
  });

  test('a first line too long to be a password is refused (a file piped in by mistake)', async () => {
    const stdin = new PassThrough();
    stdin.write('x'.repeat(5000)); // no newline yet: the limit applies before the line ends
    await assert.rejects(readLine(stdin), { code: ErrorCode.CLI_INPUT });
    const io = capturedIo(`${'y'.repeat(5000)}\n`);
    assert.equal(await runHashPassword([], io), 1);
    assert.equal(io.out(), '');
  });

  test('--help prints usage', async () => {
    const io = capturedIo();
    assert.equal(await runHashPassword(['--help'], io), 0);
    assert.match(io.out(), /usage: mcp-oauth-gateway hash-password/);
  });
});

describe('config check', () => {
  let dir = '';
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cli-test-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('a valid file: one summary line, exit 0', async () => {
    const path = join(dir, 'ok.yaml');
    await writeFile(
      path,
      `publicUrl: https://mcp.example.com
identityProviders:
  - type: oidc
    issuer: https://idp.example.com
    clientId: gateway
    clientSecret: very-secret-client-secret
servers:
  - { name: a, path: /a, upstream: { url: "http://127.0.0.1:3000/mcp" } }
  - { name: b, path: /b, upstream: { builtin: demo } }
`,
    );
    const io = { ...capturedIo(), env: {} };
    assert.equal(await runConfigCheck(['--config', path], io), 0);
    assert.equal(io.out(), 'config ok: 2 servers, 1 identity provider, issuer https://mcp.example.com\n');
    assert.ok(!io.out().includes('very-secret'));
  });

  test('defaults only: ok, with notes about what the gateway substitutes', async () => {
    const io = { ...capturedIo(), env: {} };
    assert.equal(await runConfigCheck([], io), 0);
    assert.match(io.out(), /^config ok: 0 servers, 0 identity providers, issuer http:\/\/localhost:8080\n/);
    assert.match(io.out(), /note: no servers configured/);
  });

  test('an invalid file: every problem on stderr, no secret, exit 1', async () => {
    const path = join(dir, 'bad.yaml');
    await writeFile(
      path,
      `consent:
  cookieSecret: too-short-secret-Xy7
servers:
  - { name: a, path: a, upstream: { url: "http://127.0.0.1:3000/mcp" } }
`,
    );
    const io = { ...capturedIo(), env: { MCP_GATEWAY_LISTEN__PORT: 'x' } };
    assert.equal(await runConfigCheck([`--config=${path}`], io), 1);
    assert.equal(io.out(), '');
    const report = io.err();
    assert.match(report, /^config error: 3 problems in /);
    assert.match(report, /consent\.cookieSecret \(line 2\): must be at least 32 characters/);
    assert.match(report, /servers\[0\]\.path \(line 4\): /);
    assert.match(report, /listen\.port \(from MCP_GATEWAY_LISTEN__PORT\): /);
    assert.ok(!report.includes('too-short-secret-Xy7'));
  });

  test('--config FILE, --config=FILE and -c FILE are the same option', async () => {
    const path = join(dir, 'forms.yaml');
    await writeFile(path, 'publicUrl: https://forms.example.com\n');
    for (const args of [['--config', path], [`--config=${path}`], ['-c', path]]) {
      const io = { ...capturedIo(), env: {} };
      assert.equal(await runConfigCheck(args, io), 0, args.join(' '));
      assert.match(io.out(), /issuer https:\/\/forms\.example\.com\n/);
    }
  });

  test('usage errors exit 2 and name the flag: unknown, mistyped, missing value, stray argument', async () => {
    for (const [args, named] of [
      [['--frobnicate'], '--frobnicate'],
      [['--conifg', 'gateway.yaml'], '--conifg'],
      [['--config'], '--config'],
      [['-x'], '-x'],
      [['--help=yes'], '--help'],
      [['gateway.yaml'], 'gateway.yaml'],
    ] as const) {
      const io = { ...capturedIo(), env: {} };
      assert.equal(await runConfigCheck([...args], io), 2, args.join(' '));
      assert.equal(io.out(), '');
      assert.ok(io.err().split('\n')[0]!.includes(named), `${args.join(' ')}: ${io.err()}`);
      assert.match(io.err(), /usage: mcp-oauth-gateway config check/);
    }
  });
});

describe('serve', () => {
  test('parses the same options: --config=FILE is read (and refused here: no such file, exit 1)', async () => {
    const io = capturedIo();
    assert.equal(await runServe([`--config=${join(tmpdir(), 'no-such-gateway-config.yaml')}`], io), 1);
    assert.match(io.err(), /cannot read the configuration file \(ENOENT\)/);
  });

  test('an unknown or mistyped flag is a usage error before anything starts', async () => {
    for (const [flag, named] of [
      ['--conifg=gateway.yaml', '--conifg'],
      ['--port', '--port'],
    ] as const) {
      const io = capturedIo();
      assert.equal(await runServe([flag], io), 2);
      assert.ok(io.err().split('\n')[0]!.includes(named), io.err());
      assert.match(io.err(), /usage: mcp-oauth-gateway serve/);
    }
  });
});

describe('config schema', () => {
  test("prints JSON Schema an editor's validator accepts: known keys pass, wrong types and unknown keys do not", async () => {
    const io = capturedIo();
    assert.equal(runConfigSchema([], io), 0);
    const schema = JSON.parse(io.out()) as { $schema: string; properties: Record<string, { description?: string }> };
    assert.equal(schema.$schema, 'http://json-schema.org/draft-07/schema#');
    assert.match(schema.properties.publicUrl!.description!, /issuer/);
    // Formats (uri, email) are hints for editors; the loader checks URLs itself.
    const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false });
    const validate = ajv.compile(schema);
    assert.equal(validate({ publicUrl: 'https://mcp.example.com', listen: { port: 8443 }, trustProxy: ['loopback'] }), true, JSON.stringify(validate.errors));
    assert.equal(validate({ listen: { port: 'eighty' } }), false);
    assert.equal(validate({ listen: { prot: 8080 } }), false);
    assert.equal(validate({ servers: [{ name: 'a', path: '/a', upstream: { url: 'https://up.example.com/mcp' } }] }), true, JSON.stringify(validate.errors));
  });

  test('the main entry runs it, and refuses an unknown config subcommand with exit 2', () => {
    const ok = spawnSync(process.execPath, [CLI_MAIN, 'config', 'schema'], { encoding: 'utf8' });
    assert.equal(ok.status, 0, ok.stderr);
    assert.equal(typeof (JSON.parse(ok.stdout) as { properties?: unknown }).properties, 'object');
    const bad = spawnSync(process.execPath, [CLI_MAIN, 'config', 'shcema'], { encoding: 'utf8' });
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /shcema/);
  });

  test('a reader that closes the pipe early (config schema | head) ends it quietly with status 0', async () => {
    const child = spawn(process.execPath, [CLI_MAIN, 'config', 'schema'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    // Close our end before the schema is written, as `head -c 1` does once it has its byte.
    child.stdout.destroy();
    const [code] = (await once(child, 'exit')) as [number | null];
    assert.equal(code, 0, stderr);
    assert.doesNotMatch(stderr, /EPIPE|Error/);
  });
});
