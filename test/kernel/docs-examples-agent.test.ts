import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { Netns, run, uniqueName } from '../helpers/netns.js';
import { configFor, docsTokens, hostFor, usesTokensFile, vrrpNames } from '../helpers/docs-agent.js';
import { xdpSkipReason } from '../helpers/xdp.js';
import { AgentProcess, fulcrum } from '../helpers/agent-process.js';
import { nsHttp } from '../helpers/ns-http.js';
import { agentConfigExamples, KNOWN_INVALID_EXAMPLES, usesEtcd } from '../helpers/docs-examples.js';

/**
 * Every agent config of the documentation (docs/examples/*.yaml, the yaml blocks of docs/*.md and
 * README.md) starts a real `fulcrum agent` in a fresh netns that has the interfaces the example
 * names (veth pairs to a peer netns), and reaches ready: GET /readyz 200 and `fulcrum status`
 * ready: yes. Only agent.stateDir, agent.api.port (0), agent.xdp.pinDir (unique) and
 * agent.api.tokensFile (the tokens file of docs/api.md) are overridden. On a kernel without IPVS
 * (this host) services on ipvs are stored but not programmed, and status says why; the VM tier
 * (test/vm/agent-ipvs.test.ts, scripts/demo.sh) programs them.
 */

const skip = xdpSkipReason();
const HOST_HAS_IPVS = existsSync('/proc/net/ip_vs');
const examples = agentConfigExamples();
const namespaces: Netns[] = [];
const cleanups: Array<() => Promise<void>> = [];

after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
  for (const ns of namespaces) await ns.delete();
});

test('the documentation has agent config examples (docs/examples, docs/*.md, README.md)', () => {
  const sources = examples.map((e) => e.source);
  assert.ok(sources.some((s) => s.startsWith('docs/examples/')), sources.join(', '));
  assert.ok(sources.includes('README.md#1'), sources.join(', '));
  assert.ok(sources.filter((s) => s.startsWith('docs/') && s.includes('.md#')).length >= 4, sources.join(', '));
});

// A cluster member needs an etcd: the cluster tier starts those (test/cluster/agent-cluster.test.ts).
for (const example of examples.filter((e) => !usesEtcd(e.doc))) {
  const todo = KNOWN_INVALID_EXAMPLES[example.source];
  test(`${example.source}: a real agent starts on it and reaches ready`, { skip, ...(todo ? { todo } : {}) }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fulcrum-docs-'));
    const pinDir = `/sys/fs/bpf/${uniqueName('fldoc')}-${Date.now() % 100000}`;
    cleanups.push(async () => { await run('rm', ['-rf', pinDir], { allowFail: true }); rmSync(dir, { recursive: true, force: true }); });
    const { lb, peer } = await hostFor(example);
    namespaces.push(lb, peer);
    const tokens = docsTokens(dir);
    const config = configFor(example.doc, dir, pinDir, tokens.file);
    const configPath = join(dir, 'fulcrum.yaml');
    writeFileSync(configPath, stringify(config));
    const tokenFile = usesTokensFile(example.doc) ? tokens.readToken : join(dir, 'state', 'admin.token');

    let agent: AgentProcess | undefined = await AgentProcess.start(configPath, { netns: lb.name, timeoutMs: 60_000 });
    cleanups.push(async () => {
      if (agent) await agent.kill9();
      await AgentProcess.once(configPath, ['--cleanup'], lb.name);
    });
    const ready = await nsHttp(lb.name, { url: `${agent.server}/readyz` });
    assert.equal(ready.status, 200, ready.body);

    const table = await fulcrum(['status'], agent.server, tokenFile, lb.name);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /^ready: +yes$/m);
    const status = JSON.parse((await fulcrum(['status', '-o', 'json'], agent.server, tokenFile, lb.name)).stdout) as {
      dataplanes: Array<{ name: string; available: boolean; reason?: string }>; vrrp?: Array<{ name: string; state: string }>; services: number;
    };
    const dp = (name: string) => status.dataplanes.find((d) => d.name === name);
    assert.equal(dp('xdp')?.available, example.doc.xdp !== undefined, JSON.stringify(status.dataplanes));
    assert.equal(dp('ipvs')?.available, HOST_HAS_IPVS, JSON.stringify(status.dataplanes));
    if (!HOST_HAS_IPVS) assert.match(dp('ipvs')?.reason ?? '', /kernel has no IPVS.*modprobe ip_vs/);

    // Every service of the example is stored; those on a dataplane this node lacks are named in the log.
    const services = (example.doc.services as Array<{ name: string; dataplane?: string }> | undefined) ?? [];
    assert.equal(status.services, services.length);
    const listed = JSON.parse((await fulcrum(['get', 'services', '-o', 'json'], agent.server, tokenFile, lb.name)).stdout) as Array<{ name: string }>;
    assert.deepEqual(listed.map((s) => s.name), services.map((s) => s.name));
    for (const s of services.filter((x) => (x.dataplane ?? 'ipvs') === 'ipvs' && !HOST_HAS_IPVS)) {
      assert.ok(agent.logs.some((l) => l.level === 50 && l.service === s.name && /is on ipvs, which is not available here; it is stored but not programmed/.test(String(l.msg))),
        `the log says service ${s.name} is not programmed`);
    }
    const instances = vrrpNames(example.doc);
    assert.deepEqual((status.vrrp ?? []).map((v) => v.name), instances, 'every VRRP instance of the example runs');

    assert.equal(await agent.stop(), 0, 'SIGTERM: exit 0');
    agent = undefined;
    const cleaned = await AgentProcess.once(configPath, ['--cleanup'], lb.name);
    assert.equal(cleaned.code, 0, cleaned.stderr);
    if (example.doc.xdp !== undefined) assert.equal(existsSync(`${pinDir}/prog`), false, '--cleanup removed the pins');
  });
}
