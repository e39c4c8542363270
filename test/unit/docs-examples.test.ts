import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { parseConfigFile } from '../../src/model/index.js';

// The documented examples are part of the contract: they must parse with the real schema.
const root = new URL('../../../', import.meta.url);

test('every yaml block in docs/model.md parses as a config file', () => {
  const text = readFileSync(new URL('docs/model.md', root), 'utf8');
  const blocks = [...text.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1] ?? '');
  assert.ok(blocks.length > 0, 'docs/model.md has a yaml example');
  for (const block of blocks) {
    const config = parseConfigFile(parseYaml(block));
    assert.ok(config.services.length > 0);
  }
});

test('every file in docs/examples parses as a config file', () => {
  const dir = new URL('docs/examples/', root);
  const files = readdirSync(dir).filter((f) => f.endsWith('.yaml') || f.endsWith('.yml'));
  assert.ok(files.length > 0);
  for (const f of files) assert.doesNotThrow(() => parseConfigFile(parseYaml(readFileSync(new URL(f, dir), 'utf8'))), f);
});
