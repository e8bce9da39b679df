import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { configReference } from '../../../src/config/docs.ts';

test('docs/configuration.md is the reference generated from the schema (regenerate: npm run gateway -- config docs > docs/configuration.md)', async () => {
  const committed = await readFile(new URL('../../../docs/configuration.md', import.meta.url), 'utf8');
  assert.equal(committed, configReference());
});
