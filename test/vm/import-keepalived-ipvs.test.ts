import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { ipvsSkipReason, ipvsadm, resetIpvs } from '../helpers/ipvs-vm.js';
import { tempDir } from '../helpers/ipvs-fulcrum.js';
import { AgentProcess } from '../helpers/agent-process.js';
import { importKeepalived } from '../../src/import/keepalived/index.js';

/**
 * The round trip of `fulcrum import keepalived` in the IPVS VM: keepalived (its checker process
 * only) builds the IPVS table of a config, `ipvsadm -Sn` is saved; the agent runs the imported
 * config and `ipvsadm -Sn` must be the same table. No checkers, so that neither side's health
 * checks change the table while it is compared.
 */

const skip = ipvsSkipReason() ?? (hasKeepalived() ? undefined : 'needs keepalived (apt package keepalived)');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
let state: ReturnType<typeof tempDir>;
let keepalived: ChildProcess | undefined;
let agent: AgentProcess | undefined;
let configPath: string | undefined;

function hasKeepalived(): boolean {
  return ['/usr/sbin/keepalived', '/sbin/keepalived'].some((p) => {
    try { accessSync(p, constants.X_OK); return true; } catch { return false; }
  });
}

const CONF = `
global_defs {
    router_id fulcrum-vm-import
}
virtual_server 192.0.2.10 80 {
    lb_algo wrr
    lb_kind NAT
    protocol TCP
    persistence_timeout 600
    persistence_granularity 255.255.255.0
    real_server 10.0.1.1 8080 {
        weight 3
        uthreshold 1000
        lthreshold 800
    }
    real_server 10.0.1.2 8080 {
        weight 1
    }
}
virtual_server 192.0.2.10 443 {
    lvs_sched sh
    sh-port
    sh-fallback
    lvs_method DR
    protocol TCP
    real_server 10.0.1.1 443 {
        weight 2
    }
}
virtual_server fwmark 7 {
    lb_algo rr
    lb_kind TUN
    real_server 10.0.2.1 80 {
        weight 1
    }
}
virtual_server 192.0.2.40 53 {
    lb_algo lc
    lb_kind NAT
    protocol UDP
    real_server 10.0.3.1 53 {
        weight 1
    }
    real_server 10.0.3.2 53 {
        weight 0
    }
}
virtual_server_group G {
    192.0.2.50-51 8080
}
virtual_server group G {
    lb_algo rr
    protocol TCP
    real_server 10.0.4.1 8080 {
        weight 1
    }
}
`;

/** The table as ipvsadm saves it, one rule per line, sorted (the kernel's order is a hash order). */
const saved = async () => (await ipvsadm('-Sn')).split('\n').filter(Boolean).sort().join('\n');

async function waitFor(what: string, want: (t: string) => boolean, ms: number): Promise<string> {
  const deadline = Date.now() + ms;
  let t = '';
  while (Date.now() < deadline) {
    t = await saved();
    if (want(t)) return t;
    await sleep(250);
  }
  throw new Error(`${what} within ${ms} ms; ipvsadm -Sn:\n${t}`);
}

before(async () => {
  if (skip) return;
  await resetIpvs();
  state = tempDir();
});

after(async () => {
  if (skip) return;
  keepalived?.kill('SIGKILL');
  if (agent) await agent.kill9().catch(() => undefined);
  if (configPath) await AgentProcess.once(configPath, ['--cleanup']).catch(() => undefined);
  state?.remove();
  await resetIpvs();
});

test('keepalived and the agent on the imported config build the same IPVS table', { skip, timeout: 600_000 }, async () => {
  const conf = join(state.dir, 'keepalived.conf');
  writeFileSync(conf, CONF);
  keepalived = spawn('keepalived', ['--dont-fork', '--log-console', '--check', '--use-file', conf,
    '--pid', join(state.dir, 'k.pid'), '--checkers_pid', join(state.dir, 'c.pid'), '--vrrp_pid', join(state.dir, 'v.pid')],
  { stdio: ['ignore', 'ignore', 'pipe'] });
  let kaErr = '';
  keepalived.stderr!.on('data', (c: Buffer) => { kaErr += c.toString(); });
  const services = (t: string) => t.split('\n').filter((l) => l.startsWith('-A')).length;
  const backends = (t: string) => t.split('\n').filter((l) => l.startsWith('-a')).length;
  let want: string;
  try {
    await waitFor('keepalived installs 6 services and 8 real servers', (t) => services(t) === 6 && backends(t) === 8, 120_000);
    await sleep(1000);
    want = await saved();
  } catch (e) {
    throw new Error(`${(e as Error).message}\nkeepalived:\n${kaErr}`);
  }
  assert.equal(services(want), 6, want);
  const exited = new Promise((r) => keepalived!.once('exit', r));
  keepalived.kill('SIGTERM');
  await exited;
  keepalived = undefined;
  await resetIpvs();
  assert.equal(await saved(), '');

  const imp = importKeepalived(conf);
  assert.equal(imp.config.services.length, 6);
  configPath = join(state.dir, 'fulcrum.yaml');
  writeFileSync(configPath, stringify({ agent: { stateDir: join(state.dir, 'state'), api: { port: 0 }, reconcileIntervalSeconds: 2 }, ...imp.config }));
  agent = await AgentProcess.start(configPath, { timeoutMs: 300_000 });
  const got = await waitFor('the agent builds the same table', (t) => t === want, 120_000).catch(async () => saved());
  assert.equal(got, want);
});
