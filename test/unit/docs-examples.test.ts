import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfigFile } from '../../src/model/index.js';
import { agentConfigExamples, exampleFiles, KNOWN_INVALID_EXAMPLES, yamlBlocks } from '../helpers/docs-examples.js';

// The documented examples are part of the contract: they must parse with the real schema
// (test/kernel/docs-examples-agent.test.ts starts a real agent on each).

test('every yaml block in docs/model.md parses as a config file', () => {
  const blocks = yamlBlocks('docs/model.md');
  assert.ok(blocks.length > 0, 'docs/model.md has a yaml example');
  for (const block of blocks) {
    const config = parseConfigFile(block.doc);
    assert.ok(config.services.length > 0);
  }
});

test('every file in docs/examples parses as a config file', () => {
  const files = exampleFiles();
  assert.ok(files.length > 0);
  for (const f of files) assert.doesNotThrow(() => parseConfigFile(f.doc), f.source);
});

for (const example of agentConfigExamples().filter((e) => e.source.includes('.md#'))) {
  const todo = KNOWN_INVALID_EXAMPLES[example.source];
  test(`${example.source} parses as a config file`, todo ? { todo } : {}, () => {
    assert.doesNotThrow(() => parseConfigFile(example.doc));
  });
}
