import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * docs/architecture.dot is the source of the layer diagram in docs/architecture.md: every path it
 * names exists, every directory of src/ is on it, and docs/architecture.svg was rendered from this
 * very source (scripts/docs-diagram.sh writes the source's sha256 into the SVG).
 */
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const dot = readFileSync(`${ROOT}docs/architecture.dot`, 'utf8');
const named = [...dot.matchAll(/src\/[\w./-]*\w/g)].map((m) => m[0]);

test('architecture diagram: every src/ path in docs/architecture.dot exists', () => {
  assert.ok(named.length > 10, 'the diagram names the modules');
  const missing = named.filter((p) => !existsSync(`${ROOT}${p}`));
  assert.deepEqual(missing, [], `paths in docs/architecture.dot that do not exist: ${missing.join(', ')}`);
});

test('architecture diagram: every directory of src/ is on it', () => {
  const dirs = readdirSync(`${ROOT}src`, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => `src/${d.name}`);
  const absent = dirs.filter((d) => !named.some((p) => p === d || p.startsWith(`${d}/`)));
  assert.deepEqual(absent, [], `src/ directories missing from docs/architecture.dot: ${absent.join(', ')}`);
});

test('architecture diagram: docs/architecture.svg was rendered from this source (bash scripts/docs-diagram.sh)', () => {
  const sum = createHash('sha256').update(dot).digest('hex');
  const svg = readFileSync(`${ROOT}docs/architecture.svg`, 'utf8');
  assert.match(svg, new RegExp(`<!-- source: docs/architecture.dot sha256:${sum} -->`), 'the SVG is older than docs/architecture.dot: run bash scripts/docs-diagram.sh');
});
