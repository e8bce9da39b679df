// The container's HEALTHCHECK: exit 0 when the gateway answers GET /healthz with 200, 1 otherwise.
// Slim images carry no curl; node is there. The port follows MCP_GATEWAY_LISTEN__PORT when the
// listen port is moved by environment; HEALTHCHECK_URL replaces the whole URL (for a gateway
// configured by file to listen elsewhere). The answer must come within 4 s, under the HEALTHCHECK
// timeout, so a hung gateway is reported unhealthy rather than timing the check out.
const port = process.env.MCP_GATEWAY_LISTEN__PORT || '8080';
const url = process.env.HEALTHCHECK_URL || `http://127.0.0.1:${port}/healthz`;

try {
  const response = await fetch(url, { signal: AbortSignal.timeout(4_000) });
  if (response.status !== 200) {
    process.stderr.write(`unhealthy: ${url} answered ${response.status}\n`);
    process.exit(1);
  }
} catch (error) {
  process.stderr.write(`unhealthy: ${url}: ${error.cause?.code ?? error.cause?.message ?? error.message}\n`);
  process.exit(1);
}
