/**
 * Bulk-load speed of the generic-netlink IPVS client against `ipvsadm -R` of the same rule set,
 * measured in the same kernel run (TCG VM here: compare ratios only), plus a full-table read
 * (client dumps vs `ipvsadm -Sn`).
 *
 *   npm run build && node dist/scripts/bench/ipvs-client-bulk.js [--services 1000] [--dests 10] [--repeats 3]
 *
 * Without IPVS on this kernel it re-runs itself inside the VM (scripts/vm/run.sh).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync, openSync, closeSync, mkdtempSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join, resolve } from 'node:path';
import { tmpdir } from 'node:os';
import { openIpvsClient } from '../../src/ipvs/client.js';
import type { IpvsDestSpec, IpvsOperation, IpvsServiceKey } from '../../src/ipvs/types.js';

const args = process.argv.slice(2);
const opt = (name: string, def: number): number => {
  const i = args.indexOf(`--${name}`);
  const v = i >= 0 ? Number(args[i + 1]) : def;
  if (!Number.isInteger(v) || v <= 0) throw new Error(`--${name} must be a positive integer`);
  return v;
};
const SERVICES = opt('services', 1000);
const DESTS = opt('dests', 10);
const REPEATS = opt('repeats', 3);
if (SERVICES > 60000 || DESTS > 250) throw new Error('at most 60000 services and 250 destinations each');

if (!existsSync('/proc/net/ip_vs')) {
  if (process.env.FULCRUM_VM) { console.error('no IPVS in this VM kernel'); process.exit(1); }
  const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
  console.log('no IPVS on this kernel: running inside the VM (scripts/vm/run.sh)');
  const r = spawnSync('bash', [join(repo, 'scripts/vm/run.sh'), '--timeout', '3000', '--', 'node', fileURLToPath(import.meta.url), ...args], { stdio: 'inherit' });
  process.exit(r.status ?? 1);
}

const svcKey = (i: number): IpvsServiceKey => ({ family: 'inet', protocol: 'tcp', address: `10.${100 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`, port: 80 });
const destAddr = (j: number): string => `10.1.0.${j + 1}`;
const dest = (j: number): IpvsDestSpec => ({ address: destAddr(j), port: 8080, family: 'inet', forward: 'masq', weight: 1, upperThreshold: 0, lowerThreshold: 0 });

function rulesText(): string {
  const lines: string[] = [];
  for (let i = 0; i < SERVICES; i++) {
    const k = svcKey(i);
    lines.push(`-A -t ${k.address}:80 -s wlc`);
    for (let j = 0; j < DESTS; j++) lines.push(`-a -t ${k.address}:80 -r ${destAddr(j)}:8080 -m -w 1`);
  }
  return lines.join('\n') + '\n';
}

function countDests(): number {
  const out = execFileSync('ipvsadm', ['-Ln'], { maxBuffer: 1 << 30 }).toString();
  return out.split('\n').filter((l) => l.includes('->') && !l.includes('RemoteAddress')).length;
}

/** CPU seconds (user, system) of this process's waited-for children, from /proc/self/stat. */
function childCpu(): { user: number; sys: number } {
  const f = readFileSync('/proc/self/stat', 'utf8');
  const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
  // Fields 16 and 17 (cutime, cstime), counted from field 3 at index 0, in clock ticks (100 Hz).
  return { user: Number(rest[13]) / 100, sys: Number(rest[14]) / 100 };
}
const cpuSplit: string[] = [];
const ms = (t0: bigint): number => Number(process.hrtime.bigint() - t0) / 1e6;
const stats = (xs: number[]): { min: number; median: number; max: number } => {
  const s = [...xs].sort((a, b) => a - b);
  return { min: s[0]!, median: s[Math.floor(s.length / 2)]!, max: s[s.length - 1]! };
};
const fmt = (x: { min: number; median: number; max: number }): string => `min ${x.min.toFixed(0)} / median ${x.median.toFixed(0)} / max ${x.max.toFixed(0)} ms`;

async function main(): Promise<void> {
  const link = 'blkbench0';
  spawnSync('ip', ['link', 'del', link]);
  execFileSync('ip', ['link', 'add', link, 'type', 'dummy']);
  execFileSync('ip', ['addr', 'add', '10.1.0.254/24', 'dev', link]);
  execFileSync('ip', ['link', 'set', link, 'up']);
  const dir = mkdtempSync(join(tmpdir(), 'ipvs-bench-'));
  const rules = join(dir, 'rules');
  writeFileSync(rules, rulesText());
  const client = await openIpvsClient();
  const expected = SERVICES * DESTS;
  const tIpvsadm: number[] = [], tClient: number[] = [], tSave: number[] = [], tDump: number[] = [];
  try {
    execFileSync('ipvsadm', ['-C']);
    for (let r = 0; r < REPEATS; r++) {
      // Alternate which goes first, so neither always runs on a warmer kernel.
      const order = r % 2 === 0 ? ['ipvsadm', 'client'] : ['client', 'ipvsadm'];
      for (const who of order) {
        if (who === 'ipvsadm') {
          const fd = openSync(rules, 'r');
          const c0 = childCpu();
          const t0 = process.hrtime.bigint();
          const res = spawnSync('ipvsadm', ['-R'], { stdio: [fd, 'ignore', 'pipe'] });
          tIpvsadm.push(ms(t0));
          const c1 = childCpu();
          cpuSplit.push(`ipvsadm -R: wall ${tIpvsadm[tIpvsadm.length - 1]!.toFixed(0)} ms, user ${((c1.user - c0.user) * 1000).toFixed(0)} ms, system ${((c1.sys - c0.sys) * 1000).toFixed(0)} ms`);
          closeSync(fd);
          if (res.status !== 0) throw new Error(`ipvsadm -R failed: ${res.stderr.toString()}`);
        } else {
          const u0 = process.cpuUsage();
          const t0 = process.hrtime.bigint();
          // One batch, in order on one socket: the kernel sees each service before its destinations.
          const ops: IpvsOperation[] = [];
          for (let i = 0; i < SERVICES; i++) {
            const key = svcKey(i);
            ops.push({ op: 'addService', spec: { key, scheduler: 'wlc', flags: 0, timeout: 0, netmask: 0xffffffff } });
            for (let j = 0; j < DESTS; j++) ops.push({ op: 'addDestination', key, dest: dest(j) });
          }
          const results = await client.batch(ops);
          const bad = results.find((x) => !x.ok);
          if (bad && !bad.ok) throw bad.error;
          tClient.push(ms(t0));
          const u1 = process.cpuUsage(u0);
          cpuSplit.push(`client:     wall ${tClient[tClient.length - 1]!.toFixed(0)} ms, user ${(u1.user / 1000).toFixed(0)} ms, system ${(u1.system / 1000).toFixed(0)} ms`);
        }
        const n = countDests();
        if (n !== expected) throw new Error(`${who}: ${n} destinations in the kernel, expected ${expected}`);
        if (who === 'client') {
          // Full-table read on the loaded table: our dumps vs ipvsadm -Sn.
          let t0 = process.hrtime.bigint();
          // Configuration only (no counters), as a reconciler observes.
          const services = await client.listServices({ stats: false });
          const lists = await Promise.all(services.map((s) => client.listDestinations(s.key, { stats: false })));
          tDump.push(ms(t0));
          if (lists.reduce((a, l) => a + l.length, 0) !== expected) throw new Error('dump returned a different table');
          t0 = process.hrtime.bigint();
          execFileSync('ipvsadm', ['-Sn'], { maxBuffer: 1 << 30, stdio: ['ignore', 'ignore', 'pipe'] });
          tSave.push(ms(t0));
        }
        execFileSync('ipvsadm', ['-C']);
      }
    }
  } finally {
    await client.close();
    spawnSync('ipvsadm', ['-C']);
    spawnSync('ip', ['link', 'del', link]);
    rmSync(dir, { recursive: true, force: true });
  }
  const a = stats(tIpvsadm), c = stats(tClient), d = stats(tDump), s = stats(tSave);
  const ratios = stats(tClient.map((x, i) => x / tIpvsadm[i]!));
  const dumpRatios = stats(tDump.map((x, i) => x / tSave[i]!));
  console.log(`IPVS bulk load: ${SERVICES} services x ${DESTS} destinations (${SERVICES * (DESTS + 1)} commands), ${REPEATS} repeats, kernel ${execFileSync('uname', ['-r']).toString().trim()}`);
  console.log(`  ipvsadm -R          ${fmt(a)}`);
  console.log(`  fulcrum client      ${fmt(c)}`);
  console.log(`  ratio client/ipvsadm (per repeat): min ${ratios.min.toFixed(3)} / median ${ratios.median.toFixed(3)} / max ${ratios.max.toFixed(3)}  (< 1 = faster)`);
  console.log(`  table read: ipvsadm -Sn ${fmt(s)}; client dumps (no stats) ${fmt(d)}`);
  console.log('  CPU (system time includes the kernel running the IPVS commands in the sender\'s context):');
  for (const l of cpuSplit) console.log(`    ${l}`);
  console.log(`  ratio client/ipvsadm -Sn: min ${dumpRatios.min.toFixed(3)} / median ${dumpRatios.median.toFixed(3)} / max ${dumpRatios.max.toFixed(3)}`);
}

await main();
