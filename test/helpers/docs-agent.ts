import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Netns, run, uniqueName } from './netns.js';
import { otherYamlExamples, type DocExample } from './docs-examples.js';

/**
 * What a documentation example needs to run as a real agent: a netns with the interfaces it names
 * (veth pairs to a peer netns, the host may have no `dummy` module), the example with only the
 * paths and the port a test run must own replaced, and docs/api.md's tokens file.
 */

interface VrrpDoc { name: string; interface: string; unicast?: { source?: string }; track?: { interfaces?: Array<{ interface: string }> } }

/** The interfaces an example names, with the addresses it expects on them. */
export function interfacesOf(doc: Record<string, unknown>): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const add = (name: string, addr?: string) => {
    const addrs = out.get(name) ?? [];
    if (addr && !addrs.includes(addr)) addrs.push(addr);
    out.set(name, addrs);
  };
  for (const i of ((doc.xdp as { interfaces?: Array<{ name: string }> } | undefined)?.interfaces ?? [])) add(i.name);
  const sync = (doc.ipvs as { sync?: { interface?: string } } | undefined)?.sync?.interface;
  if (sync) add(sync);
  for (const v of ((doc.vrrp as VrrpDoc[] | undefined) ?? [])) {
    add(v.interface, v.unicast?.source ? `${v.unicast.source}/24` : undefined);
    for (const t of v.track?.interfaces ?? []) add(t.interface);
  }
  return out;
}

export function vrrpNames(doc: Record<string, unknown>): string[] {
  return ((doc.vrrp as VrrpDoc[] | undefined) ?? []).map((v) => v.name);
}

/**
 * An LB netns with each named interface (a veth to a peer netns), each with a test address; with
 * `uplink`, one more interface carrying a default route (IPVS refuses destinations without a route).
 * The caller deletes the returned namespaces.
 */
export async function hostFor(example: DocExample, opts: { uplink?: boolean } = {}): Promise<{ lb: Netns; peer: Netns }> {
  const lb = await Netns.create('fdx');
  const peer = await Netns.create('fdp');
  const names = [...interfacesOf(example.doc)];
  if (opts.uplink) names.push(['fup0', []]);
  let n = 0;
  for (const [name, addrs] of names) {
    n += 1;
    const a = uniqueName('dxa'), b = uniqueName('dxb');
    await run('ip', ['link', 'add', a, 'type', 'veth', 'peer', 'name', b]);
    await run('ip', ['link', 'set', a, 'netns', lb.name]);
    await run('ip', ['link', 'set', b, 'netns', peer.name]);
    await lb.exec('ip', ['link', 'set', a, 'name', name]);
    for (const addr of [`198.18.${n}.1/24`, ...addrs]) await lb.exec('ip', ['addr', 'add', addr, 'dev', name]);
    await peer.exec('ip', ['addr', 'add', `198.18.${n}.2/24`, 'dev', b]);
    await lb.exec('ip', ['link', 'set', name, 'up']);
    await peer.exec('ip', ['link', 'set', b, 'up']);
    if (name === 'fup0') await lb.exec('ip', ['route', 'add', 'default', 'via', `198.18.${n}.2`]);
  }
  return { lb, peer };
}

/**
 * The example with only agent.stateDir, api.port (0), xdp.pinDir, api.tokensFile and the webhooks'
 * secretFile (a key written into `dir`) replaced.
 */
export function configFor(doc: Record<string, unknown>, dir: string, pinDir: string, tokensFile: string): Record<string, unknown> {
  const agent = { ...((doc.agent as Record<string, unknown> | undefined) ?? {}) };
  const api: Record<string, unknown> = { ...((agent.api as Record<string, unknown> | undefined) ?? {}), port: 0 };
  if (api.tokensFile !== undefined) api.tokensFile = tokensFile;
  const notify = agent.notify as { webhooks?: Array<Record<string, unknown>> } | undefined;
  if (notify?.webhooks) {
    const secretFile = join(dir, 'webhook.key');
    writeFileSync(secretFile, 'docs-example-webhook-key\n', { mode: 0o600 });
    agent.notify = { ...notify, webhooks: notify.webhooks.map((w) => ({ ...w, secretFile })) };
  }
  // agent.bgp: BIRD's socket and the include live in the test's directory (no BIRD there: the agent reports it).
  if (agent.bgp) agent.bgp = { ...(agent.bgp as object), controlSocket: join(dir, 'bird.ctl'), includeFile: join(dir, 'fulcrum-bird.conf') };
  return { ...doc, agent: { ...agent, api, stateDir: join(dir, 'state'), xdp: { ...((agent.xdp as object | undefined) ?? {}), pinDir } } };
}

export function usesTokensFile(doc: Record<string, unknown>): boolean {
  return (doc.agent as { api?: { tokensFile?: string } } | undefined)?.api?.tokensFile !== undefined;
}

/** docs/api.md's tokens file written into `dir`, and a file with the plain (read) token it holds. */
export function docsTokens(dir: string): { file: string; readToken: string } {
  const tokens = otherYamlExamples().find((e) => Array.isArray(e.doc.tokens));
  assert.ok(tokens, 'docs/api.md has a tokens file example');
  const plain = (tokens.doc.tokens as Array<{ token?: string }>).find((t) => t.token)?.token;
  assert.ok(plain, `${tokens.source} has a plain token`);
  const file = join(dir, 'tokens.yaml');
  writeFileSync(file, tokens.text, { mode: 0o600 });
  const readToken = join(dir, 'read.token');
  writeFileSync(readToken, plain, { mode: 0o600 });
  return { file, readToken };
}
