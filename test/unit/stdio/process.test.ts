/**
 * One stdio child on its own (src/stdio/process.ts): newline-delimited framing across pipe reads,
 * lines that are not JSON-RPC, stderr to the logs, and stopping a process group whose members
 * ignore the polite signals. Real child processes (small Node scripts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { createLogger } from '../../../src/observability/logger.ts';
import { StdioProcess, type ExitInfo } from '../../../src/stdio/process.ts';
import { processAlive } from '../../support/processes.ts';

function capture(): { logger: ReturnType<typeof createLogger>; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) lines.push(JSON.parse(line) as Record<string, unknown>);
      callback();
    },
  });
  return { logger: createLogger('info', sink), lines };
}

function node(script: string): { command: string; args: string[]; env: Record<string, string> } {
  return { command: process.execPath, args: ['-e', script], env: { PATH: process.env.PATH ?? '' } };
}

test('framing: split messages, several per read, a 2 MiB message, and non-JSON lines ignored with a log line', async () => {
  const { logger, lines } = capture();
  const messages: JSONRPCMessage[] = [];
  let exit: ExitInfo | undefined;
  const script = `
    const big = JSON.stringify({ jsonrpc: '2.0', id: 3, result: { text: 'x'.repeat(2 * 1024 * 1024) } }) + '\\n';
    process.stdout.write('banner: not json\\n');
    process.stdout.write('{"jsonrpc":"2.0","method":"a"}\\n{"jsonrpc":"2.0","id":1,"res');
    setTimeout(() => {
      process.stdout.write('ult":{}}\\n{"not":"jsonrpc"}\\n');
      for (let i = 0; i < big.length; i += 10000) process.stdout.write(big.slice(i, i + 10000));
      process.stderr.write('partial stderr line');
      process.stdout.write('', () => process.exit(0));
    }, 20);
  `;
  const child = new StdioProcess(node(script), { name: 'framer', logger, onMessage: (m) => messages.push(m), onExit: (info) => (exit = info) });
  while (exit === undefined) await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(messages.length, 3);
  assert.deepEqual(messages[0], { jsonrpc: '2.0', method: 'a' });
  assert.deepEqual(messages[1], { jsonrpc: '2.0', id: 1, result: {} });
  assert.equal((messages[2] as unknown as { result: { text: string } }).result.text.length, 2 * 1024 * 1024);
  assert.equal(exit.code, 0);
  assert.equal(exit.requested, false);
  assert.ok(lines.some((line) => line.server === 'framer' && /not JSON/.test(String(line.msg))));
  assert.ok(lines.some((line) => /not a JSON-RPC message/.test(String(line.msg))));
  assert.ok(lines.some((line) => line.stream === 'stderr' && line.msg === 'partial stderr line' && line.pid === child.pid));
});

test('a command that does not exist is reported as an exit with the spawn error', async () => {
  const { logger } = capture();
  let exit: ExitInfo | undefined;
  const child = new StdioProcess({ command: '/nonexistent/mcp-server', args: [], env: {} }, { name: 'missing', logger, onMessage: () => undefined, onExit: (info) => (exit = info) });
  while (exit === undefined) await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal((exit.error as NodeJS.ErrnoException | undefined)?.code, 'ENOENT');
  assert.equal(child.send({ jsonrpc: '2.0', method: 'x' } as JSONRPCMessage), false);
});

test('stop: SIGTERM, then SIGKILL to the whole group after the grace period, when members ignore both stdin EOF and SIGTERM', async () => {
  const { logger, lines } = capture();
  // The child ignores SIGTERM and stdin EOF, and starts a grandchild that does the same.
  const stubborn = `process.on('SIGTERM', () => {}); setInterval(() => {}, 1000);`;
  const script = `
    const { spawn } = require('node:child_process');
    const grandchild = spawn(process.execPath, ['-e', ${JSON.stringify(stubborn)}], { stdio: 'ignore' });
    process.stderr.write('grandchild ' + grandchild.pid + '\\n');
    ${stubborn}
  `;
  let exit: ExitInfo | undefined;
  const child = new StdioProcess(node(script), { name: 'stubborn', logger, onMessage: () => undefined, onExit: (info) => (exit = info) });
  let grandchild: number | undefined;
  while (grandchild === undefined) {
    await new Promise((resolve) => setTimeout(resolve, 20));
    const line = lines.find((entry) => typeof entry.msg === 'string' && entry.msg.startsWith('grandchild '));
    if (line) grandchild = Number(String(line.msg).slice('grandchild '.length));
  }
  assert.ok(processAlive(child.pid!) && processAlive(grandchild));
  const started = Date.now();
  await child.stop(500);
  assert.ok(Date.now() - started >= 500, 'waited for the grace period');
  assert.equal(exit?.signal, 'SIGKILL');
  assert.equal(exit?.requested, true);
  assert.equal(processAlive(child.pid!), false);
  assert.equal(processAlive(grandchild), false, 'the grandchild was killed with the group');
  assert.ok(lines.some((line) => /SIGKILL/.test(String(line.msg))));
});
