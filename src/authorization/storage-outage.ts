/**
 * What oidc-provider's clients see while storage is unavailable (Redis down or restarting): the OAuth
 * error `temporarily_unavailable` (RFC 6749 §4.1.2.1) with HTTP 503 and `Retry-After`, on the token,
 * registration and authorization endpoints alike, instead of oidc-provider's `server_error` 500.
 *
 * oidc-provider turns any error it does not know into `server_error`, so the storage it is given is
 * wrapped: a rejection with ERR_STORAGE_UNAVAILABLE becomes its own `TemporarilyUnavailable` error,
 * which it then answers (or, on /authorize, redirects to the client) like any other OAuth error.
 */
import type Provider from 'oidc-provider';
import { errors } from 'oidc-provider';
import { ErrorCode, hasErrorCode } from '../core/errors.ts';
import { STORAGE_RETRY_AFTER_SECONDS, STORAGE_UNAVAILABLE_BODY } from '../http/errors.ts';
import type { Storage } from '../storage/types.ts';

function temporarilyUnavailable(cause: unknown): Error {
  const error = new errors.TemporarilyUnavailable(STORAGE_UNAVAILABLE_BODY.error_description, { cause });
  // oidc-provider's errors are 400s; 503 tells any HTTP client, not only OAuth ones, to retry later.
  Object.assign(error, { status: 503, statusCode: 503 });
  return error;
}

/** The same storage, whose outages reject with oidc-provider's `temporarily_unavailable`. */
export function storageForProvider(storage: Storage): Storage {
  return new Proxy(storage, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) =>
        (value as (...a: unknown[]) => Promise<unknown>).apply(target, args).catch((error: unknown) => {
          throw hasErrorCode(error, ErrorCode.STORAGE_UNAVAILABLE) ? temporarilyUnavailable(error) : error;
        });
    },
  });
}

/** Adds `Retry-After` (RFC 9110 §10.2.3) to the 503s above, whatever the endpoint rendered them as. */
export function retryAfterOnUnavailable(provider: Provider): void {
  provider.use(async (ctx, next) => {
    await next();
    if (ctx.status === 503) ctx.set('retry-after', String(STORAGE_RETRY_AFTER_SECONDS));
  });
}
