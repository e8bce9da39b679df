/**
 * The forms that post to /interaction/:uid/decision, told apart by their `step` field. Each step's
 * CSRF token is minted for that step and that interaction only: the chooser's token is rendered only
 * after consent was approved, and the denied page's only after a refusal, so no form can be reached
 * by skipping the step before it.
 */
import { csrfToken, csrfTokenValid } from '../../http/csrf.ts';
import { DENIED_STEP } from '../pages/denied-page.ts';
import { CHOOSER_STEP } from '../pages/sign-in-chooser-page.ts';

/** The consent page posts no `step`; absent means this one. */
export const CONSENT_STEP = 'consent';
export { CHOOSER_STEP, DENIED_STEP };

const CSRF_PURPOSE = {
  [CONSENT_STEP]: 'consent',
  [CHOOSER_STEP]: 'sign-in-choice',
  [DENIED_STEP]: 'access-denied',
} as const;

export type InteractionStep = keyof typeof CSRF_PURPOSE;

export function isInteractionStep(value: string): value is InteractionStep {
  return Object.hasOwn(CSRF_PURPOSE, value);
}

export function stepCsrfToken(secret: Buffer, step: InteractionStep, uid: string): string {
  return csrfToken(secret, CSRF_PURPOSE[step], uid);
}

/** False for an unknown step as for a missing or wrong token. */
export function stepCsrfTokenValid(secret: Buffer, step: string, uid: string, token: string | undefined): boolean {
  return isInteractionStep(step) && csrfTokenValid(secret, CSRF_PURPOSE[step], uid, token);
}
