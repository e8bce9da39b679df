/**
 * The configuration schema seen as JSON Schema: which keys exist and what type each expects.
 *
 * The loader walks the JSON Schema zod derives from `configSchema` (public API, stable) rather than
 * zod's internals: that is how environment variables find their key and get coerced, how `${file:}`
 * knows a list key, and how unknown keys are found without making every schema object strict (strict
 * objects inside unions would turn a typo into an unreadable "no union member matched").
 */
import { z } from 'zod';
import { configSchema } from '../schema.ts';
import { closestName } from './closest-name.ts';
import { isPlainObject, type PathSegment } from './key-path.ts';

/** The subset of JSON Schema that zod emits for this configuration. */
export interface JsonSchema {
  type?: string;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  items?: JsonSchema;
  additionalProperties?: JsonSchema | boolean;
  oneOf?: JsonSchema[];
  anyOf?: JsonSchema[];
  const?: unknown;
  enum?: unknown[];
  default?: unknown;
  description?: string;
  format?: string;
  pattern?: string;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  minItems?: number;
  minLength?: number;
  $ref?: string;
  $defs?: Record<string, JsonSchema>;
}

let cachedJsonSchema: JsonSchema | undefined;

/** `configSchema` as JSON Schema (input side: what may be written, with defaults). */
export function configJsonSchema(): JsonSchema {
  // `unrepresentable: 'any'` because refinements (superRefine) have no JSON Schema form; they are
  // still enforced by zod, this view is only about keys and types.
  cachedJsonSchema ??= z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any' }) as JsonSchema;
  return cachedJsonSchema;
}

export function deref(node: JsonSchema): JsonSchema {
  const ref = node.$ref;
  if (!ref?.startsWith('#/$defs/')) return node;
  return configJsonSchema().$defs?.[ref.slice('#/$defs/'.length)] ?? node;
}

export function unionVariants(node: JsonSchema): JsonSchema[] | undefined {
  const variants = node.oneOf ?? node.anyOf;
  return variants?.map(deref);
}

/**
 * The union member that `value` is meant to be: the one whose `const` properties (the discriminator,
 * such as `type: oidc`) all match, else the object variant sharing the most keys with it.
 */
export function pickVariant(variants: JsonSchema[], value: unknown): JsonSchema | undefined {
  if (!isPlainObject(value)) return undefined;
  const discriminated = variants.filter((variant) => Object.values(variant.properties ?? {}).some((prop) => prop.const !== undefined));
  if (discriminated.length === variants.length) {
    return variants.find((variant) => Object.entries(variant.properties ?? {}).every(([key, prop]) => prop.const === undefined || value[key] === prop.const));
  }
  let best: JsonSchema | undefined;
  let bestScore = 0;
  for (const variant of variants) {
    const score = Object.keys(value).filter((key) => key in (variant.properties ?? {})).length;
    if (score > bestScore) {
      best = variant;
      bestScore = score;
    }
  }
  return best;
}

/** The schema of `parent[segment]`, choosing union members by the data where it has to. */
export function childSchema(node: JsonSchema, segment: PathSegment, value: unknown): JsonSchema | undefined {
  node = deref(node);
  const variants = unionVariants(node);
  if (variants) {
    const picked = pickVariant(variants, value);
    if (picked) return childSchema(picked, segment, value);
    for (const variant of variants) {
      const found = childSchema(variant, segment, value);
      if (found) return found;
    }
    return undefined;
  }
  if (typeof segment === 'number') return node.type === 'array' && node.items ? deref(node.items) : undefined;
  const prop = node.properties?.[segment];
  if (prop) return deref(prop);
  return typeof node.additionalProperties === 'object' ? deref(node.additionalProperties) : undefined;
}

export function schemaAt(path: readonly PathSegment[], data: unknown): JsonSchema | undefined {
  let node: JsonSchema | undefined = configJsonSchema();
  let value = data;
  for (const segment of path) {
    node = childSchema(node, segment, value);
    if (!node) return undefined;
    value = isPlainObject(value) || Array.isArray(value) ? (value as Record<PathSegment, unknown>)[segment] : undefined;
  }
  return node;
}

/** What a key expects, roughly: enough to coerce an environment string. */
export function kindOf(node: JsonSchema | undefined): string {
  if (!node) return 'unknown';
  node = deref(node);
  const variants = unionVariants(node);
  if (variants) {
    const kinds = new Set(variants.map(kindOf));
    return kinds.size === 1 ? [...kinds][0]! : 'union';
  }
  if (node.type) return node.type;
  if (node.const !== undefined) return typeof node.const;
  if (node.enum) return 'string';
  return 'unknown';
}

/** A key the schema does not have, with the known key it most likely meant. */
export interface UnknownKey {
  path: PathSegment[];
  suggestion?: string;
}

/**
 * Keys in `value` the schema does not have. zod would silently drop them, so a typo would go unnoticed.
 * Inside a union, only the member the data selects is searched: when the data matches no member, zod
 * reports that, and guessing the keys' meaning would only add noise.
 */
export function findUnknownKeys(node: JsonSchema | undefined, value: unknown, path: PathSegment[] = [], found: UnknownKey[] = []): UnknownKey[] {
  if (!node) return found;
  node = deref(node);
  const variants = unionVariants(node);
  if (variants) {
    const picked = pickVariant(variants, value);
    if (picked) findUnknownKeys(picked, value, path, found);
    return found;
  }
  if (Array.isArray(value)) {
    const items = node.type === 'array' ? node.items : undefined;
    if (items) for (const [index, item] of value.entries()) findUnknownKeys(items, item, [...path, index], found);
    return found;
  }
  if (!isPlainObject(value) || node.type !== 'object') return found;
  const known = node.properties ?? {};
  for (const [key, item] of Object.entries(value)) {
    const prop = known[key];
    if (prop) {
      findUnknownKeys(prop, item, [...path, key], found);
    } else if (typeof node.additionalProperties === 'object') {
      findUnknownKeys(node.additionalProperties, item, [...path, key], found);
    } else if (node.properties) {
      const suggestion = closestName(key, Object.keys(known));
      found.push(suggestion ? { path: [...path, key], suggestion } : { path: [...path, key] });
    }
  }
  return found;
}
