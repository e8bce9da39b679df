/**
 * `config docs` and `config schema`: print the configuration reference (Markdown) or its JSON Schema.
 * Both are derived from the one schema, so neither can drift from what the loader accepts.
 */
import type { Writable } from 'node:stream';
import { configReference } from '../config/docs.ts';
import { editorJsonSchema } from '../config/editor-schema.ts';
import { HELP_OPTION, parseCommandArgs, reportUsageError, UsageError } from './args.ts';

const DOCS_USAGE = `usage: mcp-oauth-gateway config docs

Prints the configuration reference (Markdown), as in docs/configuration.md.
`;

const SCHEMA_USAGE = `usage: mcp-oauth-gateway config schema

Prints the configuration's JSON Schema (draft-07) for editors, for example:
  mcp-oauth-gateway config schema > gateway.schema.json
and, first line of gateway.yaml (YAML language server, VS Code YAML extension):
  # yaml-language-server: $schema=./gateway.schema.json
`;

export function runConfigDocs(args: string[], io: { stdout: Writable; stderr: Writable }): number {
  return printing(args, io, DOCS_USAGE, () => configReference());
}

export function runConfigSchema(args: string[], io: { stdout: Writable; stderr: Writable }): number {
  return printing(args, io, SCHEMA_USAGE, () => `${JSON.stringify(editorJsonSchema(), null, 2)}\n`);
}

function printing(args: string[], io: { stdout: Writable; stderr: Writable }, usage: string, text: () => string): number {
  try {
    if (parseCommandArgs(args, { options: HELP_OPTION }).help) {
      io.stdout.write(usage);
      return 0;
    }
  } catch (error) {
    if (error instanceof UsageError) return reportUsageError(error, usage, io.stderr);
    throw error;
  }
  io.stdout.write(text());
  return 0;
}
