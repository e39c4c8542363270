import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { run, uniqueName, type Netns } from '../helpers/netns.js';
import { ipvsSkipReason } from '../helpers/ipvs-vm.js';
import { AgentProcess, fulcrum } from '../helpers/agent-process.js';
import { configFor, docsTokens, hostFor, usesTokensFile } from '../helpers/docs-agent.js';
import { agentConfigExamples, KNOWN_INVALID_EXAMPLES } from '../helpers/docs-examples.js';
import { parseConfigFile, serviceKey } from '../../src/model/index.js';

/**
 * The documentation's config examples that have IPVS services, in the VM (the host kernel has no
 * IPVS: test/kernel/docs-examples-agent.test.ts checks there that the agent starts without it):
 * each starts a real agent in a fresh netns (the interfaces it names, plus an uplink with a
 * default route: IPVS refuses destinations without one), and `ipvsadm -Ln` in that netns shows
 * every IPVS service of the example with its scheduler and backends (or its sorry server: the
 * example's backends do not exist, so a service with a quorum starts without it). IPVS state is per netns, so
 * the guest's own table is untouched.
 */

const skip = ipvsSkipReason();
const examples = agentConfigExamples().filter((e) => !KNOWN_INVALID_EXAMPLES[e.source] && parseConfigFile(e.doc).services.some((s) => s.dataplane === 'ipvs'));
const namespaces: Netns[] = [];
const cleanups: Array<() => Promise<void>> = [];

after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
  for (const ns of namespaces) await ns.delete();
});

test('the documentation has IPVS examples', () => {
  assert.ok(examples.some((e) => e.source === 'docs/examples/ipvs-demo.yaml'), examples.map((e) => e.source).join(', '));
});

for (const example of examples) {
  test(`${example.source}: a real agent programs its IPVS services`, { skip }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fulcrum-docs-ipvs-'));
    const pinDir = `/sys/fs/bpf/${uniqueName('fldoc')}-${Date.now() % 100000}`;
    cleanups.push(async () => { await run('rm', ['-rf', pinDir], { allowFail: true }); rmSync(dir, { recursive: true, force: true }); });
    const { lb, peer } = await hostFor(example, { uplink: true });
    namespaces.push(lb, peer);
    const tokens = docsTokens(dir);
    const configPath = join(dir, 'fulcrum.yaml');
    writeFileSync(configPath, stringify(configFor(example.doc, dir, pinDir, tokens.file)));
    const tokenFile = usesTokensFile(example.doc) ? tokens.readToken : join(dir, 'state', 'admin.token');

    // IPVS state is per netns: deleting the netns in after() removes what the agent programmed
    // (--cleanup itself is checked by vm/agent-ipvs.test.ts; a node process start costs seconds under TCG).
    let agent: AgentProcess | undefined = await AgentProcess.start(configPath, { netns: lb.name, timeoutMs: 300_000 });
    cleanups.push(async () => { if (agent) await agent.kill9(); });
    const status = JSON.parse((await fulcrum(['status', '-o', 'json'], agent.server, tokenFile, lb.name)).stdout) as { ready: boolean; dataplanes: Array<{ name: string; available: boolean }> };
    assert.equal(status.ready, true);
    assert.equal(status.dataplanes.find((d) => d.name === 'ipvs')?.available, true, JSON.stringify(status.dataplanes));

    const table = (await lb.exec('ipvsadm', ['-Ln'])).stdout;
    // Read once, only if a backend is missing: the health states the agent reports after the table was read.
    let health: Map<string, string> | undefined;
    const healthNow = async () => {
      const st = JSON.parse((await fulcrum(['status', '-o', 'json'], agent!.server, tokenFile, lb.name)).stdout) as { health?: Array<{ service: string; backends: Array<{ address: string; port: number; state: string }> }> };
      return new Map((st.health ?? []).flatMap((h) => h.backends.map((b) => [`${h.service} ${b.address}:${b.port}`, b.state] as const)));
    };
    for (const s of parseConfigFile(example.doc).services.filter((x) => x.dataplane === 'ipvs')) {
      const key = serviceKey(s).replace(/^(tcp|udp|sctp) /, (_m, p: string) => `${p.toUpperCase()}  `);
      assert.ok(table.includes(`${key} ${s.scheduler}`), `${s.name}: ${key} ${s.scheduler} in\n${table}`);
      // Health-checked backends start down (initialState: weight 0 until they pass); with a sorry
      // server the quorum is lost at start (no backend here passes), so the sorry server alone serves.
      const sorry = s.health?.sorryServer;
      const expected = sorry ? [{ address: sorry.address, port: sorry.port ?? s.port }] : s.backends;
      for (const b of expected) {
        if (new RegExp(`-> ${b.address.replace(/\./g, '\\.')}:${b.port} `).test(table)) continue;
        // An example's backends do not exist: one that starts up (initialState: up) without
        // inhibitOnFailure is removed once it failed `fall` checks, which a slow start under TCG can outlast.
        health ??= await healthNow();
        const state = health.get(`${s.name} ${b.address}:${b.port}`);
        assert.ok(!sorry && s.health && !s.health.inhibitOnFailure && state === 'down',
          `${s.name}: backend ${b.address}:${b.port} missing from the table (health ${state ?? 'unchecked'})\n${table}`);
      }
    }
    assert.equal(await agent.stop(), 0);
    agent = undefined;
  });
}
