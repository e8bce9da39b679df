/**
 * Forward-auth with a real nginx (Debian package) in front of a real MCP server (the demo server),
 * configured as docs/forward-auth.md says: the official SDK client connects to the nginx URL, receives
 * the 401 challenge from nginx, discovers the gateway as its authorization server, logs in through the
 * gateway and the corporate IdP, and calls tools through nginx; the MCP server sees the identity
 * headers nginx copied from the gateway's answer, and never the token.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { type DemoServer, startDemoServer } from '../../src/demo/server.ts';
import { Browser } from '../support/browser.ts';
import { TestOAuthClientProvider } from '../support/mcp-client.ts';
import { nginxUnavailable, type RunningNginx, startNginx } from '../support/nginx.ts';
import { freePort } from '../support/ports.ts';
import {
  checkAudienceAcrossProxy,
  checkChallengeThroughProxy,
  checkIdentityAtServer,
  checkProgressStreams,
  connectThroughProxy,
  forwardAuthServer,
} from './forward-auth-checks.ts';
import { authorizeAndExchange, mcpInitialize, registerPublicClient } from './oauth.ts';
import { loggedInClient, type Stack, startStack } from './stack.ts';

const SERVER = 'nginx-tools';

/**
 * The nginx configuration of docs/forward-auth.md ("nginx"), with the test's ports. Layout: the MCP
 * server at /mcp on nginx's origin; the gateway elsewhere; nginx also routes the RFC 9728 well-known
 * path to the gateway so clients that probe the MCP origin find the metadata too.
 */
function nginxConfig(port: number, gateway: string, mcpUpstream: string): string {
  return `
  upstream mcp_gateway {
    server ${new URL(gateway).host};
    keepalive 16;
  }

  server {
    listen 127.0.0.1:${port};

    location /mcp {
      auth_request /_gateway_auth/${SERVER};
      # Identity from the gateway's 200 answer; an empty value removes a client-sent header of that name.
      auth_request_set $auth_user_id     $upstream_http_x_user_id;
      auth_request_set $auth_user_email  $upstream_http_x_user_email;
      auth_request_set $auth_user_name   $upstream_http_x_user_name;
      auth_request_set $auth_user_groups $upstream_http_x_user_groups;
      proxy_set_header X-User-Id     $auth_user_id;
      proxy_set_header X-User-Email  $auth_user_email;
      proxy_set_header X-User-Name   $auth_user_name;
      proxy_set_header X-User-Groups $auth_user_groups;
      # The gateway's token is for the gateway alone (MCP: no token passthrough).
      proxy_set_header Authorization "";

      # 401: nginx copies WWW-Authenticate itself. 403 (insufficient_scope): it does not, so copy it.
      auth_request_set $auth_www_authenticate $upstream_http_www_authenticate;
      error_page 401 = @gateway_401;
      error_page 403 = @gateway_403;

      # Streamable HTTP: SSE responses must flow event by event.
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_cache off;
      proxy_read_timeout 1h;
      # Test only: the SDK server sends X-Accel-Buffering: no; ignoring it shows streaming does not
      # depend on the MCP server sending that header.
      proxy_ignore_headers X-Accel-Buffering;
      proxy_pass ${mcpUpstream};
    }

    location ~ ^/_gateway_auth/(?<fa_server>[a-z0-9-]+)$ {
      internal;
      proxy_pass http://mcp_gateway/forward-auth/$fa_server;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Forwarded-Method $request_method;
      proxy_set_header X-Forwarded-Proto  $scheme;
      proxy_set_header X-Forwarded-Host   $http_host;
      proxy_set_header X-Forwarded-Uri    $request_uri;
      proxy_set_header X-Original-URI  "";
      proxy_set_header X-Original-URL  "";
      proxy_set_header X-Original-Host "";
    }

    location @gateway_401 {
      default_type application/json;
      return 401 '{"error":"invalid_token","error_description":"Authorization required"}';
    }
    location @gateway_403 {
      default_type application/json;
      add_header WWW-Authenticate $auth_www_authenticate always;
      return 403 '{"error":"insufficient_scope","error_description":"Forbidden"}';
    }

    location /.well-known/oauth-protected-resource/ {
      proxy_pass http://mcp_gateway;
      proxy_set_header Host $http_host;
    }
  }`;
}

const unavailable = nginxUnavailable();

describe('forward-auth behind a real nginx', { skip: unavailable ?? false }, () => {
  let stack: Stack;
  let nginx: RunningNginx;
  let mcp: DemoServer;
  let resource: string;

  before(async () => {
    const nginxPort = await freePort();
    resource = `http://127.0.0.1:${nginxPort}/mcp`;
    mcp = await startDemoServer({ host: '127.0.0.1', port: 0 });
    stack = await startStack({
      extraServers: [forwardAuthServer(SERVER, '/nginx-tools', resource)],
    });
    const mcpOrigin = new URL(mcp.url).origin;
    nginx = await startNginx({ port: nginxPort, http: (port) => nginxConfig(port, stack.gateway.listenUrl, mcpOrigin) });
  });

  after(async () => {
    await nginx?.close();
    await stack?.close();
    await mcp?.close();
  });

  it("answers an anonymous request with the gateway's challenge, once, and a JSON body", async () => {
    await checkChallengeThroughProxy(stack, nginx.url, resource, SERVER);
  });

  it('the SDK client logs in through the gateway and calls tools through nginx, as the user', async () => {
    const client = await connectThroughProxy(stack, resource, 'nginx');
    try {
      await checkIdentityAtServer(client, 'nginx');
      await checkProgressStreams(client);
      const log = await nginx.accessLog();
      assert.match(log, /"POST \/mcp HTTP\/1\.1" 200/);
    } finally {
      await client.close();
    }
  });

  it('refuses through nginx a token issued for another MCP server, and the gateway refuses the nginx token', async () => {
    const nginxToken = await checkAudienceAcrossProxy(stack, resource, 'nginx');
    // `location /mcp` also matches /mcpx, which is not under the resource: the gateway says no.
    assert.equal((await mcpInitialize(`${nginx.url}/mcpx`, nginxToken)).status, 403);
  });

  it('relays 403 insufficient_scope with its challenge (copied by the error_page location)', async () => {
    const browser = new Browser({ ca: stack.ca.caPem });
    const client = await registerPublicClient(stack, 'http://127.0.0.1:5557/callback');
    const tokens = await authorizeAndExchange(stack, browser, client, { resource, scope: 'mcp:tools' });
    assert.equal(tokens.status, 200, JSON.stringify(tokens.body));
    const response = await mcpInitialize(resource, String(tokens.body.access_token));
    assert.equal(response.status, 403);
    assert.equal(
      response.headers.get('www-authenticate'),
      `Bearer error="insufficient_scope", scope="mcp:tools mcp:admin", resource_metadata="${stack.issuer}/.well-known/oauth-protected-resource/forward-auth/${SERVER}"`,
    );
  });

  it('a direct check about a request nginx does not protect is refused, not answered as an oracle', async () => {
    const provider = new TestOAuthClientProvider({ mode: 'dcr' });
    const client = await loggedInClient(stack, provider);
    await client.close();
    const response = await fetch(`${stack.gateway.listenUrl}/forward-auth`, {
      headers: { 'x-forwarded-host': 'evil.example.com', 'x-forwarded-uri': '/mcp', authorization: `Bearer ${provider.tokens()?.access_token}` },
    });
    assert.equal(response.status, 403);
    assert.equal(response.headers.get('www-authenticate'), null);
  });

  it('a client without a session or token still cannot reach the MCP server through nginx', async () => {
    const transport = new StreamableHTTPClientTransport(new URL(resource), { fetch: stack.fetch });
    const client = new Client({ name: 'anonymous', version: '0' });
    await assert.rejects(client.connect(transport), /invalid_token/);
    await client.close();
  });
});
