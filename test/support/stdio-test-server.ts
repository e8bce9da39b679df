/**
 * A stdio MCP server for tests (the SDK's McpServer over StdioServerTransport): every feature the
 * stdio bridge must carry, in one small program.
 *
 * Tools: `echo` (text back), `env` (a named environment variable, to prove the IdP token arrives),
 * `big` (N bytes of text, for messages larger than a pipe buffer), `crash` (exits the process),
 * `pid`, `sample` (sampling/createMessage to the client), `elicit` (elicitation/create), `roots`
 * (roots/list), `slow` (progress notifications; honours cancellation), `stats` (how many `slow`
 * calls were cancelled), `announce` (tools/list_changed). On stderr it writes one line at start (`stdio-test-server started pid=…`).
 *
 * @example
 * // in a gateway config: upstream: { stdio: { command: process.execPath, args: [STDIO_TEST_SERVER] } }
 * import { STDIO_TEST_SERVER } from './stdio-test-server.ts';
 */
import { fileURLToPath } from 'node:url';
import { z } from 'zod';

/** Absolute path of this file, to spawn it with `process.execPath`. */
export const STDIO_TEST_SERVER = fileURLToPath(import.meta.url);

async function main(): Promise<void> {
  const { McpServer } = await import('@modelcontextprotocol/sdk/server/mcp.js');
  const { StdioServerTransport } = await import('@modelcontextprotocol/sdk/server/stdio.js');
  const server = new McpServer({ name: 'stdio-test-server', version: '1.0.0' }, { capabilities: { logging: {} } });
  let cancelled = 0;
  const text = (value: string) => ({ content: [{ type: 'text' as const, text: value }] });

  server.registerTool('echo', { description: 'Returns its text.', inputSchema: { text: z.string() } }, ({ text: value }) => text(value));
  server.registerTool('env', { description: 'Returns an environment variable.', inputSchema: { name: z.string() } }, ({ name }) =>
    text(process.env[name] ?? '<unset>'),
  );
  server.registerTool('big', { description: 'Returns `bytes` characters.', inputSchema: { bytes: z.number().int().positive() } }, ({ bytes }) =>
    text('x'.repeat(bytes)),
  );
  server.registerTool('pid', { description: 'Returns the process id.' }, () => text(String(process.pid)));
  server.registerTool('crash', { description: 'Exits the process at once.' }, () => {
    process.stderr.write('stdio-test-server crashing on request\n');
    process.exit(3);
  });
  server.registerTool('sample', { description: 'Asks the client to sample.', inputSchema: { prompt: z.string() } }, async ({ prompt }) => {
    const result = await server.server.createMessage({ messages: [{ role: 'user', content: { type: 'text', text: prompt } }], maxTokens: 50 });
    return text(`sampled: ${result.content.type === 'text' ? result.content.text : result.content.type}`);
  });
  server.registerTool('elicit', { description: 'Asks the client for a name.' }, async () => {
    const result = await server.server.elicitInput({
      message: 'Your name?',
      requestedSchema: { type: 'object', properties: { name: { type: 'string' } }, required: ['name'] },
    });
    return text(`elicited: ${result.action} ${String(result.content?.name ?? '')}`);
  });
  server.registerTool('roots', { description: "Lists the client's roots." }, async () => {
    const result = await server.server.listRoots();
    return text(result.roots.map((root) => root.uri).join(','));
  });
  server.registerTool(
    'slow',
    {
      description: 'Sends `steps` progress notifications, `delayMs` apart.',
      inputSchema: { steps: z.number().int().positive(), delayMs: z.number().int().nonnegative() },
    },
    async ({ steps, delayMs }, extra) => {
      const token = extra._meta?.progressToken;
      for (let step = 1; step <= steps; step++) {
        if (extra.signal.aborted) break;
        await new Promise((resolve) => setTimeout(resolve, delayMs));
        if (extra.signal.aborted) break;
        if (token !== undefined)
          await extra.sendNotification({ method: 'notifications/progress', params: { progressToken: token, progress: step, total: steps } });
      }
      if (extra.signal.aborted) {
        cancelled++;
        process.stderr.write('stdio-test-server slow call cancelled\n');
      }
      return text(`done ${steps}`);
    },
  );
  server.registerTool('announce', { description: 'Sends notifications/tools/list_changed to every client.' }, () => {
    server.sendToolListChanged();
    return text('announced');
  });
  server.registerTool('stats', { description: 'How many slow calls were cancelled.' }, () => text(JSON.stringify({ cancelled })));

  await server.connect(new StdioServerTransport());
  process.stderr.write(`stdio-test-server started pid=${process.pid}\n`);
}

if (process.argv[1] === STDIO_TEST_SERVER) await main();
