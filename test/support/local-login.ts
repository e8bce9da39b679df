/**
 * A whole login against a gateway whose identity provider is a `local` one, as a person and a public
 * client go through it once: dynamic registration, `/authorize` with PKCE S256 and `resource`, the
 * consent page, the local sign-in, and the code exchanged at `/token`. Used where a test or benchmark
 * only needs a real access token from a gateway started as its own process.
 */
import { createHash, randomBytes } from 'node:crypto';
import { Browser } from './browser.ts';

export interface LocalLogin {
  username: string;
  password: string;
  /** The MCP server's resource URI the token is for. */
  resource: string;
  /** The registered client's name, which shows on the consent page. */
  clientName?: string;
}

/** Returns the access token; throws with the page where the login stopped when it fails. */
export async function loginWithLocalAccount(issuer: string, login: LocalLogin): Promise<string> {
  const redirectUri = 'http://127.0.0.1:9/callback';
  const registration = await fetch(`${issuer}/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ client_name: login.clientName ?? 'local-login', redirect_uris: [redirectUri], token_endpoint_auth_method: 'none' }),
  });
  const { client_id: clientId } = (await registration.json()) as { client_id: string };
  const verifier = randomBytes(32).toString('base64url');
  const authorize = new URL('/authorize', issuer);
  const query = {
    response_type: 'code',
    client_id: clientId,
    redirect_uri: redirectUri,
    state: randomBytes(8).toString('hex'),
    resource: login.resource,
    code_challenge: createHash('sha256').update(verifier).digest('base64url'),
    code_challenge_method: 'S256',
  };
  for (const [key, value] of Object.entries(query)) authorize.searchParams.set(key, value);
  const browser = new Browser();
  let page = await browser.goto(authorize);
  page = await browser.submitForm(page, { button: 'approve' });
  page = await browser.submitForm(page, { fields: { username: login.username, password: login.password }, stopAt: redirectUri });
  const code = page.url.searchParams.get('code');
  if (!code) throw new Error(`login failed at ${page.url.href}: ${page.text.slice(0, 200)}`);
  const token = await fetch(`${issuer}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'authorization_code',
      code,
      redirect_uri: redirectUri,
      code_verifier: verifier,
      client_id: clientId,
      resource: login.resource,
    }),
  });
  return ((await token.json()) as { access_token: string }).access_token;
}
