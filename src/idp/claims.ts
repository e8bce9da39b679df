/**
 * Claim mapping: which claims of an IdP's ID token (merged with its userinfo answer) give the stable
 * user id, the email, its verification, the name and the groups. Pure functions; each preset supplies
 * its defaults (src/idp/presets/) and the operator may override any of them (`claims:`).
 */

import { ErrorCode, GatewayError } from '../core/errors.ts';
import type { IdpIdentity } from './types.ts';

/** Resolved mapping: every field named, groups as a list of claims whose values are merged. */
export interface ClaimMapping {
  subject: string;
  email: string;
  emailVerified: string;
  name: string[];
  groups: string[];
}

/** What OIDC Core §5.1 names; the generic default. */
export const STANDARD_CLAIMS: ClaimMapping = {
  subject: 'sub',
  email: 'email',
  emailVerified: 'email_verified',
  // `preferred_username` only when there is no `name` (Keycloak users without a first/last name).
  name: ['name', 'preferred_username'],
  groups: ['groups'],
};

/** The operator's overrides as the schema gives them. */
export interface ClaimOverrides {
  subject?: string | undefined;
  email?: string | undefined;
  emailVerified?: string | undefined;
  name?: string | undefined;
  groups?: string | string[] | undefined;
}

/** The preset's defaults with the operator's keys put over them. */
export function resolveClaimMapping(defaults: ClaimMapping, overrides: ClaimOverrides = {}): ClaimMapping {
  return {
    subject: overrides.subject ?? defaults.subject,
    email: overrides.email ?? defaults.email,
    emailVerified: overrides.emailVerified ?? defaults.emailVerified,
    name: overrides.name !== undefined ? [overrides.name] : defaults.name,
    groups: overrides.groups === undefined ? defaults.groups : typeof overrides.groups === 'string' ? [overrides.groups] : overrides.groups,
  };
}

/** Thrown when the mapped subject claim is missing: no stable id, no login. */
export class MissingSubjectClaim extends GatewayError {
  readonly claim: string;
  constructor(claim: string) {
    super(ErrorCode.IDP_SUBJECT_MISSING, `the ID token has no "${claim}" claim to use as the user id`);
    this.name = 'MissingSubjectClaim';
    this.claim = claim;
  }
}

/**
 * The identity from the claims. The subject must be a non-empty string (or a number, which some IdPs
 * use for ids); everything else is optional and ignored when it has the wrong type.
 */
export function identityFromClaims(claims: Record<string, unknown>, mapping: ClaimMapping): IdpIdentity {
  const rawSubject = claims[mapping.subject];
  const subject = typeof rawSubject === 'number' && Number.isSafeInteger(rawSubject) ? String(rawSubject) : rawSubject;
  if (typeof subject !== 'string' || subject === '') throw new MissingSubjectClaim(mapping.subject);

  const identity: IdpIdentity = { subject, groups: groupsFrom(claims, mapping.groups) };
  const email = claims[mapping.email];
  if (typeof email === 'string' && email !== '') identity.email = email;
  const verified = booleanClaim(claims[mapping.emailVerified]);
  if (verified !== undefined) identity.emailVerified = verified;
  for (const claim of mapping.name) {
    const name = claims[claim];
    if (typeof name === 'string' && name !== '') {
      identity.name = name;
      break;
    }
  }
  return identity;
}

/**
 * The merged, de-duplicated values of the group claims. A claim may be an array of strings, or one
 * string: Cognito and some SAML bridges send a single group as a plain string.
 */
export function groupsFrom(claims: Record<string, unknown>, names: readonly string[]): string[] {
  const groups = new Set<string>();
  for (const name of names) {
    const value = claims[name];
    if (typeof value === 'string' && value !== '') groups.add(value);
    else if (Array.isArray(value)) for (const item of value) if (typeof item === 'string' && item !== '') groups.add(item);
  }
  return [...groups];
}

/** Booleans, and the strings "true"/"false" that older Cognito pools and SAML bridges send. */
export function booleanClaim(value: unknown): boolean | undefined {
  if (typeof value === 'boolean') return value;
  if (value === 'true' || value === 'false') return value === 'true';
  return undefined;
}
