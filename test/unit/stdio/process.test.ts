/**
 * One stdio child on its own (src/stdio/process.ts): newline-delimited framing across pipe reads,
 * lines that are not JSON-RPC, stderr to the logs, and stopping a process group whose members
 * ignore the polite signals. Real child processes (small Node scripts); the tests await their exit
 * and their log lines rather than polling for them.
 */

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { type ExitInfo, StdioProcess } from '../../../src/stdio/process.ts';
import { LogWatch } from '../../support/log-watch.ts';
import { processAlive } from '../../support/processes.ts';

function capture(): { watch: LogWatch; logger: LogWatch['logger']; lines: LogWatch['lines'] } {
  const watch = new LogWatch('info');
  return { watch, logger: watch.logger, lines: watch.lines };
}

/** An `onExit` for StdioProcess, and the promise of the exit it reports. */
function exitWatch(): { onExit: (info: ExitInfo) => void; exited: Promise<ExitInfo> } {
  let onExit!: (info: ExitInfo) => void;
  const exited = new Promise<ExitInfo>((resolve) => {
    onExit = resolve;
  });
  return { onExit, exited };
}

function node(script: string): { command: string; args: string[]; env: Record<string, string> } {
  return { command: process.execPath, args: ['-e', script], env: { PATH: process.env.PATH ?? '' } };
}

test('framing: split messages, several per read, a 2 MiB message, and non-JSON lines ignored with a log line', async () => {
  const { logger, lines } = capture();
  const messages: JSONRPCMessage[] = [];
  const { onExit, exited } = exitWatch();
  // The child's own timer puts a message's two halves into separate pipe reads.
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
  const child = new StdioProcess(node(script), { name: 'framer', logger, onMessage: (m) => messages.push(m), onExit });
  const exit = await exited;
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
  const { onExit, exited } = exitWatch();
  const child = new StdioProcess({ command: '/nonexistent/mcp-server', args: [], env: {} }, { name: 'missing', logger, onMessage: () => undefined, onExit });
  const exit = await exited;
  assert.equal((exit.error as NodeJS.ErrnoException | undefined)?.code, 'ENOENT');
  assert.equal(child.send({ jsonrpc: '2.0', method: 'x' } as JSONRPCMessage), false);
});

test('stop: SIGTERM, then SIGKILL to the whole group after the grace period, when members ignore both stdin EOF and SIGTERM', async () => {
  const { watch, logger, lines } = capture();
  // The child ignores SIGTERM and stdin EOF, and starts a grandchild that does the same. The
  // grandchild announces itself on the shared stderr only once its SIGTERM handler is in place, so
  // the stop below cannot catch it before it is stubborn.
  const stubborn = `process.on('SIGTERM', () => {}); setInterval(() => {}, 1000);`;
  const grandchildScript = `${stubborn} process.stderr.write('grandchild ' + process.pid + '\\n');`;
  const script = `
    ${stubborn}
    const { spawn } = require('node:child_process');
    spawn(process.execPath, ['-e', ${JSON.stringify(grandchildScript)}], { stdio: ['ignore', 'ignore', 'inherit'] });
  `;
  const { onExit, exited } = exitWatch();
  const child = new StdioProcess(node(script), { name: 'stubborn', logger, onMessage: () => undefined, onExit });
  const announced = await watch.first((entry) => typeof entry.msg === 'string' && entry.msg.startsWith('grandchild '), 'the grandchild to start');
  const grandchild = Number(String(announced.msg).slice('grandchild '.length));
  assert.ok(processAlive(child.pid!) && processAlive(grandchild));
  // The grace period is a real timer (it gives a real process time to exit): short here, and the
  // stop is awaited rather than slept through.
  const graceMs = 100;
  const started = performance.now();
  await child.stop(graceMs);
  assert.ok(performance.now() - started >= graceMs, 'waited for the grace period');
  const exit = await exited;
  assert.equal(exit.signal, 'SIGKILL');
  assert.equal(exit.requested, true);
  assert.equal(processAlive(child.pid!), false);
  assert.equal(processAlive(grandchild), false, 'the grandchild was killed with the group');
  assert.ok(lines.some((line) => /SIGKILL/.test(String(line.msg))));
});

test('a process that writes a line past the message limit is killed and reported as a crash, its earlier messages kept', async () => {
  const { logger, lines } = capture();
  const messages: JSONRPCMessage[] = [];
  const { onExit, exited } = exitWatch();
  // One good message, then output that never ends its line: without a cap the gateway would buffer
  // it until it ran out of memory.
  const script = `
    process.stdout.write('{"jsonrpc":"2.0","method":"before"}\\n');
    const piece = 'x'.repeat(64 * 1024);
    const flood = () => process.stdout.write(piece, flood);
    flood();
  `;
  const child = new StdioProcess(node(script), { name: 'flood', logger, onMessage: (m) => messages.push(m), onExit, maxMessageBytes: 256 * 1024 });
  let giveUp: NodeJS.Timeout | undefined;
  const exit = await Promise.race([
    exited,
    new Promise<never>((_, reject) => {
      giveUp = setTimeout(() => {
        void child.stop(100);
        reject(new Error('the flooding process was not stopped'));
      }, 10_000);
    }),
  ]).finally(() => clearTimeout(giveUp));
  assert.equal(exit.signal, 'SIGKILL');
  assert.equal(exit.requested, false, 'a crash to the connection: requests in flight fail, the process restarts with backoff');
  assert.deepEqual(messages, [{ jsonrpc: '2.0', method: 'before' }]);
  const logged = lines.find((line) => line.event === 'stdio.message_too_large');
  assert.equal(logged?.level, 50, 'logged as an error');
  assert.equal(logged?.server, 'flood');
});
