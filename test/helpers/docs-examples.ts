import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { ConfigFileSchema } from '../../src/model/index.js';

/**
 * The configuration examples of the documentation: every file in docs/examples/ and every
 * ```yaml block of docs/*.md and README.md. They are part of the contract (the unit tier parses
 * them, the kernel tier starts a real agent on each).
 */

export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

export interface DocExample {
  /** Where it is, e.g. "docs/model.md#1" (the block's position in the file, from 1) or "docs/examples/ipvs-demo.yaml". */
  source: string;
  text: string;
  doc: Record<string, unknown>;
}

/** The sections of a config file (agent, services, xdp, vrrp, ...), from the schema itself. */
const CONFIG_KEYS = new Set(Object.keys(ConfigFileSchema.shape));

/** The ```yaml blocks of a Markdown file (relative to the repository root). */
export function yamlBlocks(file: string): DocExample[] {
  const text = readFileSync(`${REPO_ROOT}${file}`, 'utf8');
  return [...text.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m, i) => ({
    source: `${file}#${i + 1}`,
    text: m[1] ?? '',
    doc: (parseYaml(m[1] ?? '') ?? {}) as Record<string, unknown>,
  }));
}

export function exampleFiles(): DocExample[] {
  return readdirSync(`${REPO_ROOT}docs/examples`)
    .filter((f) => f.endsWith('.yaml') || f.endsWith('.yml'))
    .sort()
    .map((f) => {
      const text = readFileSync(`${REPO_ROOT}docs/examples/${f}`, 'utf8');
      return { source: `docs/examples/${f}`, text, doc: (parseYaml(text) ?? {}) as Record<string, unknown> };
    });
}

export function markdownFiles(): string[] {
  return ['README.md', ...readdirSync(`${REPO_ROOT}docs`).filter((f) => f.endsWith('.md')).sort().map((f) => `docs/${f}`)];
}

/** A YAML document is an agent config when its top-level keys are config sections only. */
export function isAgentConfig(doc: Record<string, unknown>): boolean {
  const keys = Object.keys(doc);
  return keys.length > 0 && keys.every((k) => CONFIG_KEYS.has(k));
}

/** An agent config whose agent.store is an etcd cluster (docs/cluster.md). */
export function usesEtcd(doc: Record<string, unknown>): boolean {
  return (doc.agent as { store?: { kind?: string } } | undefined)?.store?.kind === 'etcd';
}

/** Every agent config of the documentation (files first, then Markdown blocks). */
export function agentConfigExamples(): DocExample[] {
  return [...exampleFiles(), ...markdownFiles().flatMap(yamlBlocks)].filter((e) => isAgentConfig(e.doc));
}

/** The YAML blocks that are not agent configs (e.g. the tokens file of docs/api.md). */
export function otherYamlExamples(): DocExample[] {
  return markdownFiles().flatMap(yamlBlocks).filter((e) => !isAgentConfig(e.doc));
}

/**
 * Examples known not to be valid configs, with why; their tests run as `todo` (reported, not
 * counted as failures) until the document is fixed.
 */
export const KNOWN_INVALID_EXAMPLES: Record<string, string> = {};
