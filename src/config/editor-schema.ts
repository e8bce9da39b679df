/**
 * The configuration's JSON Schema for editors (`config schema`): the YAML language server and VS Code
 * use it for completion, hover text (the same descriptions as the reference) and squiggles.
 *
 * Draft-07, which every editor's validator understands. Objects are closed (`additionalProperties:
 * false`) because the loader refuses unknown keys too; the runtime schema leaves them open only so the
 * loader can say "unknown key, did you mean" itself (see load.ts). Rules written as code (uniqueness,
 * cross-key checks, files that must exist) have no JSON Schema form: `config check` runs those.
 */
import { z } from 'zod';
import { configSchema } from './schema.ts';

type Node = Record<string, unknown>;

export function editorJsonSchema(): Node {
  const schema = z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any', target: 'draft-7' }) as Node;
  closeObjects(schema);
  return { ...schema, title: 'mcp-oauth-gateway configuration' };
}

/** `additionalProperties: false` on every object that lists its properties and says nothing else. */
function closeObjects(node: unknown): void {
  if (Array.isArray(node)) {
    node.forEach(closeObjects);
    return;
  }
  if (typeof node !== 'object' || node === null) return;
  const object = node as Node;
  if (object.type === 'object' && object.properties && object.additionalProperties === undefined) object.additionalProperties = false;
  Object.values(object).forEach(closeObjects);
}
