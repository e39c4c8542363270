import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { run, type Netns } from '../helpers/netns.js';
import { xdpSkipReason, testDirs } from '../helpers/xdp.js';
import { createXdpAgentLab, ECHO, LAB_XDP, labBackend, type XdpAgentLab } from '../helpers/xdp-agent-lab.js';
import { AgentProcess, fulcrum } from '../helpers/agent-process.js';

/**
 * The agent started by `ip netns exec`, which gives it a fresh /sys with no bpffs at /sys/fs/bpf:
 * it mounts one (as systemd or Cilium would), says so in its log, and its XDP service carries
 * traffic. The pins live in that private mount; docs/xdp.md says what that means for restarts.
 */

const skip = xdpSkipReason() ?? (existsSync('/usr/sbin/ethtool') || existsSync('/sbin/ethtool') ? undefined : 'needs ethtool (scripts/setup.sh installs it)');

let lab: XdpAgentLab | undefined;
let client: Netns, lb: Netns;
let dir: string;
let agent: AgentProcess | undefined;

before(async () => {
  if (skip) return;
  dir = testDirs().stateDir;
  lab = await createXdpAgentLab('fm');
  ({ client, lb } = lab);
});

after(async () => {
  if (skip) return;
  if (agent) await agent.kill9().catch(() => undefined);
  // The program stays attached after a kill; its pins went with the agent's mount namespace.
  for (const dev of ['l0', 'lb1', 'lb2']) await lb?.exec('ip', ['link', 'set', 'dev', dev, 'xdp', 'off']).catch(() => undefined);
  await lab?.delete();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('started by ip netns exec (no bpffs at /sys/fs/bpf), the agent mounts bpffs, logs it, and forwards', { skip }, async () => {
  // What the agent will see: ip netns exec mounts a fresh sysfs, with nothing at /sys/fs/bpf.
  const seen = await run('ip', ['netns', 'exec', lb.name, 'stat', '-f', '-c', '%T', '/sys/fs/bpf']);
  assert.notEqual(seen.stdout.trim(), 'bpf_fs', 'ip netns exec must show no bpffs for this test to mean anything');

  const stateDir = join(dir, 'state');
  const configPath = join(dir, 'fulcrum.yaml');
  const statePath = join(dir, 'state.yaml');
  writeFileSync(configPath, stringify({ agent: { stateDir, api: { port: 0 }, reconcileIntervalSeconds: 2 }, xdp: LAB_XDP }));
  writeFileSync(statePath, stringify({
    xdp: LAB_XDP,
    services: [{ name: 'web', dataplane: 'xdp', address: '10.0.0.1', port: 80, backends: [1, 2].map((i) => ({ address: labBackend(i), port: 8080 })) }],
  }));
  agent = await AgentProcess.start(configPath, { netns: lb.name, launcher: 'ip-netns-exec' });
  const mounted = agent.logs.find((l) => /^no bpf filesystem was mounted at \/sys\/fs\/bpf: mounted one/.test(String(l.msg)));
  assert.ok(mounted, `the mount is logged: ${JSON.stringify(agent.logs.map((l) => l.msg))}`);
  assert.equal(mounted.component, 'xdp');
  assert.ok(agent.logs.some((l) => l.msg === 'dataplane xdp found'), 'the xdp dataplane is available');

  const applied = await fulcrum(['apply', '-f', statePath], agent.server, join(stateDir, 'admin.token'), lb.name);
  assert.equal(applied.code, 0, applied.stderr);
  // 24 flows: all on one of the two backends with probability 2^-23 (Maglev hashes their ports).
  const r = await client.exec(process.execPath, [ECHO, 'tcp', '10.0.0.1', '80', '24'], { timeoutMs: 60_000 });
  const ids = (JSON.parse(r.stdout) as { ids: string[] }).ids;
  assert.deepEqual([...new Set(ids)].sort(), ['b1', 'b2'], `both backends answer through the VIP: ${ids.join(',')}`);
  // bpftool, from the host's mount namespace, sees the agent's program attached in the LB netns.
  const net = await lb.exec('bpftool', ['-j', 'net', 'show']);
  const attached = (JSON.parse(net.stdout) as Array<{ xdp?: Array<{ devname: string; name?: string }> }>)[0]?.xdp ?? [];
  assert.deepEqual(attached.map((x) => x.devname).sort(), ['l0', 'lb1', 'lb2'], net.stdout);
});
