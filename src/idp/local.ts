/**
 * The built-in `local` identity provider: accounts listed in the configuration, signed in with a
 * password on a page the gateway serves itself.
 *
 * It plays the same part as an external IdP so the rest of the gateway cannot tell the difference:
 *
 *   authorizationUrl -> GET /sign-in/<id>?state=... (form) -> POST /sign-in/<id> (password checked,
 *   one-time code stored) -> 303 to the gateway's callback with code + state -> completeLogin
 *   (code consumed, identity returned)
 *
 * The pending login stored under `state` is owned by the authorization side: this module only checks
 * that it exists (the callback consumes it, and also checks the browser binding, which is what stops
 * login CSRF — RFC 9700 §4.7).
 */
import { createHash, randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { LocalProviderConfig, LocalUserConfig } from '../config/schema.ts';
import { ErrorCode, GatewayError } from '../core/errors.ts';
import { readForm } from '../http/body.ts';
import { constantTimeEqual, csrfToken } from '../http/csrf.ts';
import { OAuthError } from '../http/errors.ts';
import type { Logger } from '../observability/logger.ts';
import { addressGroup } from '../policy/address-group.ts';
import { NS } from '../storage/records.ts';
import type { Storage } from '../storage/types.ts';
import { html, type PageBranding, raw, sendErrorPage, sendPage } from '../ui/layout.ts';
import { verifyPassword, verifyPasswordForUnknownUser } from './passwords.ts';
import { type IdentityProvider, IdpLoginError, type IdpLoginResult, type IdpLoginState } from './types.ts';

/** A one-time code lives just long enough for the browser to follow one redirect. */
const CODE_TTL_SECONDS = 60;
/** A sign-in form is a few short fields; anything bigger is not one. */
const MAX_FORM_BYTES = 8 * 1024;
const MAX_USERNAME_LENGTH = 256;
const STATE_PATTERN = /^[\x21-\x7e]{1,512}$/;

export interface LocalIdentityProviderDeps {
  config: LocalProviderConfig;
  storage: Storage;
  /** The gateway's public origin. */
  issuer: string;
  /** Key for the sign-in form's CSRF token (the consent secret will do: tokens are domain-separated). */
  cookieSecret: Buffer | string;
  branding: PageBranding;
  logger: Logger;
  /** The gateway's one callback; default `<issuer>/callback`. */
  callbackUrl?: string;
  /**
   * The client address used for per-address rate limiting. Default: the socket's peer address. Behind a
   * reverse proxy pass the forwarded address, or every client would share (and lock out) one bucket.
   */
  clientAddress?: (req: IncomingMessage) => string | undefined;
}

/** How one password check ended: refused unchecked during a lockout, wrong, or right. */
type AttemptOutcome = { result: 'locked' } | { result: 'failed'; knownUser?: string } | { result: 'ok'; user: LocalUserConfig };

/** What a one-time code stands for. */
interface LocalCodeRecord {
  provider: string;
  username: string;
  state: string;
}

export class LocalIdentityProvider implements IdentityProvider {
  readonly id: string;
  readonly displayName: string;
  readonly #config: LocalProviderConfig;
  readonly #storage: Storage;
  readonly #issuer: string;
  readonly #secret: Buffer;
  readonly #branding: PageBranding;
  readonly #logger: Logger;
  readonly #callbackUrl: string;
  readonly #signInPath: string;
  readonly #clientAddress: (req: IncomingMessage) => string | undefined;
  readonly #queue = new KeyedQueue();

  constructor(deps: LocalIdentityProviderDeps) {
    this.#config = deps.config;
    this.id = deps.config.id;
    this.displayName = deps.config.displayName;
    this.#storage = deps.storage;
    this.#issuer = deps.issuer;
    this.#secret = Buffer.isBuffer(deps.cookieSecret) ? deps.cookieSecret : Buffer.from(deps.cookieSecret, 'utf8');
    this.#branding = deps.branding;
    this.#logger = deps.logger;
    this.#callbackUrl = deps.callbackUrl ?? new URL('/callback', deps.issuer).href;
    this.#signInPath = new URL(`/sign-in/${encodeURIComponent(this.id)}`, deps.issuer).pathname;
    this.#clientAddress = deps.clientAddress ?? ((req) => req.socket.remoteAddress);
  }

  async authorizationUrl(login: IdpLoginState, callbackUrl: string): Promise<URL> {
    // The sign-in form redirects to the callback it was built with, not to one carried in the request
    // (that would be an open redirect); a different callback here means the wiring is wrong.
    if (callbackUrl !== this.#callbackUrl) {
      throw new GatewayError(
        ErrorCode.IDP_CONFIG_INVALID,
        `local identity provider "${this.id}" was set up for callback ${this.#callbackUrl}, not ${callbackUrl}`,
      );
    }
    const url = new URL(this.#signInPath, this.#issuer);
    url.searchParams.set('state', login.state);
    return url;
  }

  /** `_expectedCallbackUrl` matters to IdPs that redeem a code remotely; a local code never leaves the gateway. */
  async completeLogin(callbackUrl: URL, login: IdpLoginState, _expectedCallbackUrl?: string): Promise<IdpLoginResult> {
    const code = callbackUrl.searchParams.get('code');
    if (!code || code.length > 512) {
      throw new IdpLoginError('access_denied', 'The sign-in did not complete.', 'local: callback without a code');
    }
    // Consumed whatever happens next: a code that reached the wrong login is burnt, not left to retry.
    const record = await this.#storage.consume<LocalCodeRecord>(NS.localCodes, codeKey(code));
    if (!record) {
      throw new IdpLoginError('access_denied', 'The sign-in code is invalid or has expired.', 'local: unknown, used or expired code');
    }
    // Bound to this provider and this login: codes share one namespace, and a code from another
    // provider's form (other accounts, other passwords) must not sign in a same-named user here.
    if (record.provider !== this.id || record.state !== login.state) {
      throw new IdpLoginError(
        'access_denied',
        'The sign-in code does not belong to this sign-in.',
        `local: code issued for provider ${record.provider} and another state`,
      );
    }
    const user = this.#findUser(record.username);
    if (!user) {
      throw new IdpLoginError('access_denied', 'This account can no longer sign in.', 'local: user removed from the configuration after signing in');
    }
    return {
      identity: {
        subject: user.username,
        ...(user.email ? { email: user.email, emailVerified: true } : {}), // the administrator vouched for it
        ...(user.name ? { name: user.name } : {}),
        groups: [...user.groups],
      },
      tokens: {}, // nothing upstream to call on the user's behalf
    };
  }

  /** GET /sign-in/<id>?state=... */
  async handleSignInPage(_req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const state = url.searchParams.get('state') ?? '';
    if (!(await this.#pendingLoginExists(state))) {
      this.#sendExpired(res);
      return;
    }
    this.#sendForm(res, 200, state, {});
  }

  /** POST /sign-in/<id> (application/x-www-form-urlencoded: state, csrf, username, password). */
  async handleSignInSubmit(req: IncomingMessage, res: ServerResponse, _url: URL): Promise<void> {
    const form = await this.#readSignInForm(req, res);
    if (!form) return;
    const state = await this.#verifiedState(res, form);
    if (state === undefined) return;
    const credentials = this.#credentials(res, state, form);
    if (!credentials) return;
    const { username, password } = credentials;
    const address = addressGroup(this.#clientAddress(req));
    const outcome = await this.#attemptInTurn(username, password, address);
    if (outcome.result === 'locked') this.#sendLocked(res, state, username, address);
    else if (outcome.result === 'failed') this.#sendFailed(res, state, username, outcome.knownUser, address);
    else await this.#finishSignIn(res, state, outcome.user);
  }

  /** The posted form, or undefined once an error page has been sent. */
  async #readSignInForm(req: IncomingMessage, res: ServerResponse): Promise<Record<string, string> | undefined> {
    try {
      return await readForm(req, MAX_FORM_BYTES);
    } catch (error) {
      const status = error instanceof OAuthError ? error.status : 400;
      sendErrorPage(res, status, this.#branding, 'Request refused', 'The sign-in form could not be read. Start the sign-in again from your application.');
      return undefined;
    }
  }

  /** The form's state once its CSRF token and pending login check out, or undefined once a page has been sent. */
  async #verifiedState(res: ServerResponse, form: Record<string, string>): Promise<string | undefined> {
    const state = form.state ?? '';
    // CSRF first: it needs no storage, so forged posts cost nothing and touch no counters. The token is
    // an HMAC of the state: only a page this gateway rendered for this login can carry it.
    if (!STATE_PATTERN.test(state) || !constantTimeEqual(form.csrf ?? '', this.#csrfToken(state))) {
      this.#logger.warn({ event: 'local.signin.csrf_failed', provider: this.id }, 'sign-in form with a missing or wrong CSRF token');
      sendErrorPage(res, 403, this.#branding, 'Request refused', 'The sign-in form could not be verified. Start the sign-in again from your application.');
      return undefined;
    }
    if (!(await this.#pendingLoginExists(state))) {
      this.#sendExpired(res);
      return undefined;
    }
    return state;
  }

  /** The username and password when both are there, or undefined once the form has been shown again. */
  #credentials(res: ServerResponse, state: string, form: Record<string, string>): { username: string; password: string } | undefined {
    const username = (form.username ?? '').trim();
    const password = form.password ?? '';
    if (username === '' || password === '' || username.length > MAX_USERNAME_LENGTH) {
      this.#sendForm(res, 400, state, { error: 'Enter your username and password.', username: username.slice(0, MAX_USERNAME_LENGTH) });
      return undefined;
    }
    return { username, password };
  }

  /**
   * One check at a time per username and per address (always in that order, so no deadlock). Without
   * this, a burst of parallel guesses would all pass the lockout check before any failure is counted.
   * It holds within one process; across replicas the overshoot is at most one guess per replica.
   */
  #attemptInTurn(username: string, password: string, address: string): Promise<AttemptOutcome> {
    const userKey = `local:${this.id}:user:${username.toLowerCase()}`;
    const addressKey = `local:${this.id}:address:${address}`;
    return this.#queue.run(userKey, () => this.#queue.run(addressKey, () => this.#attempt(username, password, [userKey, addressKey])));
  }

  #sendLocked(res: ServerResponse, state: string, username: string, address: string): void {
    this.#logger.warn({ event: 'local.signin.locked', provider: this.id, address }, 'sign-in refused: too many failed attempts');
    const minutes = Math.ceil(this.#config.lockoutWindow / 60);
    this.#sendForm(res, 429, state, {
      error: `Too many failed sign-in attempts. Wait ${minutes} minute${minutes === 1 ? '' : 's'} and try again.`,
      username,
      headers: { 'retry-after': String(this.#config.lockoutWindow) },
    });
  }

  #sendFailed(res: ServerResponse, state: string, username: string, knownUser: string | undefined, address: string): void {
    // The username is logged only when it is a real account: an unknown one is often a password
    // typed into the wrong field.
    this.#logger.warn({ event: 'local.signin.failed', provider: this.id, user: knownUser, address }, 'sign-in failed: wrong username or password');
    // One message for both cases, so the page does not reveal which usernames exist.
    this.#sendForm(res, 401, state, { error: 'The username or password is incorrect.', username });
  }

  /** Stores a one-time code for `user` and sends the browser to the gateway's callback with it. */
  async #finishSignIn(res: ServerResponse, state: string, user: LocalUserConfig): Promise<void> {
    const code = randomBytes(32).toString('base64url');
    const record: LocalCodeRecord = { provider: this.id, username: user.username, state };
    // Stored under a hash of the code: whoever can read the storage still cannot redeem a code.
    await this.#storage.set(NS.localCodes, codeKey(code), record, CODE_TTL_SECONDS);
    this.#logger.info({ event: 'local.signin.succeeded', provider: this.id, user: user.username }, 'local sign-in succeeded');
    const target = new URL(this.#callbackUrl);
    target.searchParams.set('code', code);
    target.searchParams.set('state', state);
    // 303: the browser follows with a GET, so the form (and its password) is never re-posted.
    res.writeHead(303, { location: target.href, 'cache-control': 'no-store', 'referrer-policy': 'no-referrer' });
    res.end();
  }

  async #attempt(username: string, password: string, counterKeys: string[]): Promise<AttemptOutcome> {
    // When locked, the password is not even checked: a correct guess during a lockout must look the
    // same as a wrong one, or the lockout would still confirm passwords. Unknown usernames are counted
    // and locked like real ones, so a lockout message reveals nothing about which accounts exist.
    for (const key of counterKeys) {
      const count = Number((await this.#storage.get<number>(NS.rateLimits, key)) ?? 0);
      if (count >= this.#config.maxFailedAttempts) return { result: 'locked' };
    }
    const user = this.#findUser(username);
    // An unknown user costs one scrypt too, so response time does not reveal which usernames exist.
    const valid = user ? await verifyPassword(password, user.passwordHash) : await verifyPasswordForUnknownUser(password);
    if (user && valid) return { result: 'ok', user };
    // Fixed windows (the counter's TTL starts with the first failure). A success does not reset them:
    // otherwise anyone who knows one password could reset the address counter between guesses.
    for (const key of counterKeys) await this.#storage.increment(NS.rateLimits, key, this.#config.lockoutWindow);
    return { result: 'failed', knownUser: user?.username };
  }

  #findUser(username: string): LocalUserConfig | undefined {
    // Case-insensitive (the schema rejects usernames that differ only in case); the configured
    // spelling is the subject, so the user id is stable however it was typed.
    const folded = username.toLowerCase();
    return this.#config.users.find((user) => user.username.toLowerCase() === folded);
  }

  async #pendingLoginExists(state: string): Promise<boolean> {
    if (!STATE_PATTERN.test(state)) return false;
    return (await this.#storage.get(NS.pendingLogins, state)) !== undefined;
  }

  #csrfToken(state: string): string {
    // Purpose and provider in the MAC input: a token minted for another form (consent, another
    // provider) with the same secret never verifies here.
    return csrfToken(this.#secret, `local-sign-in:${this.id}`, state);
  }

  #sendExpired(res: ServerResponse): void {
    sendErrorPage(
      res,
      400,
      this.#branding,
      'This sign-in has expired',
      'This sign-in link has expired or was already used. Start the sign-in again from your application.',
    );
  }

  #sendForm(res: ServerResponse, status: number, state: string, options: { error?: string; username?: string; headers?: Record<string, string> }): void {
    const { error, username = '' } = options;
    // With an error shown, both fields point at it so screen readers announce it with the field.
    const invalid = error ? raw(' aria-invalid="true" aria-describedby="sign-in-error"') : '';
    const body = html`<h1>Sign in</h1>
<p class="lead">${this.displayName}</p>
${error ? html`<p class="error" id="sign-in-error" role="alert">${error}</p>` : ''}
<form method="post" action="${this.#signInPath}">
<input type="hidden" name="state" value="${state}">
<input type="hidden" name="csrf" value="${this.#csrfToken(state)}">
<label for="username">Username</label>
<input type="text" id="username" name="username" value="${username}" autocomplete="username" autocapitalize="none" spellcheck="false" required${username ? '' : raw(' autofocus')}${invalid}>
<label for="password">Password</label>
<input type="password" id="password" name="password" autocomplete="current-password" required${username ? raw(' autofocus') : ''}${invalid}>
<div class="actions"><button type="submit" class="primary">Sign in</button></div>
</form>`;
    sendPage(res, status, this.#branding, 'Sign in', body, options.headers ?? {});
  }
}

function codeKey(code: string): string {
  return createHash('sha256').update(code).digest('base64url');
}

/** Runs tasks one at a time per key; keys with nothing queued take no memory. */
class KeyedQueue {
  readonly #tails = new Map<string, Promise<void>>();

  async run<T>(key: string, task: () => Promise<T>): Promise<T> {
    const previous = this.#tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const done = new Promise<void>((resolve) => {
      release = resolve;
    });
    const tail = previous.then(() => done);
    this.#tails.set(key, tail);
    await previous;
    try {
      return await task();
    } finally {
      release();
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    }
  }
}
