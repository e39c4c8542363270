/**
 * IPVS apply benchmark: Fulcrum's reconciler against ipvsadm, measured in the same VM boot.
 *
 *   npm run build && bash scripts/vm/run.sh --timeout 3000 -- node dist/scripts/bench/ipvs-apply.js
 *   (env: SERVICES=10000 BACKENDS=10 REPEATS_FULL=1 REPEATS=5 REPEATS_DUMP=1, 0 skips a part; under TCG one full
 *   apply of ipvsadm -R takes minutes, so the big runs repeat once by default)
 *
 * 1. full apply from an empty table: reconcile(10k services x 10 backends) vs `ipvsadm -R` of the
 *    same set (the restore file is written beforehand; each run starts from `ipvsadm -C`);
 * 2. one backend's weight changed in that 10k table: plan + apply (targeted gets, no dump) vs one
 *    `ipvsadm -e` doing the same edit;
 * 3. dump of the table (services + destinations, formatted as text) vs `ipvsadm -Sn`.
 * Prints min/median/max of each and the ratio of medians (Fulcrum / ipvsadm; <= 1.0 means no slower).
 * Must run as root in a kernel with IPVS (the VM); under TCG absolute times are ~10x native.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, openSync, rmSync, writeFileSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseDesiredState, type Service } from '../../src/model/index.js';
import { IpvsReconciler } from '../../src/ipvs/reconciler.js';
import { openIpvsClient } from '../../src/ipvs/client.js';
import { formatIpvsadmList } from '../../src/ipvs/list-format.js';
import { listDestinationsOf } from '../../src/ipvs/read.js';

const SERVICES = Number(process.env.SERVICES ?? 10_000);
const BACKENDS = Number(process.env.BACKENDS ?? 10);
const REPEATS_FULL = Number(process.env.REPEATS_FULL ?? 1);
const REPEATS = Number(process.env.REPEATS ?? 5);
const REPEATS_DUMP = Number(process.env.REPEATS_DUMP ?? 1);

function sh(cmd: string, args: string[], stdinFile?: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const stdin = stdinFile ? openSync(stdinFile, 'r') : 'ignore';
    const p = spawn(cmd, args, { stdio: [stdin, 'ignore', 'pipe'] });
    let err = '';
    p.stderr!.on('data', (c: Buffer) => (err += c.toString()));
    p.on('exit', (code) => {
      if (typeof stdin === 'number') closeSync(stdin);
      code === 0 ? resolve() : reject(new Error(`${cmd} ${args.join(' ')}: exit ${code}: ${err}`));
    });
  });
}

async function time(fn: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await fn();
  return performance.now() - t;
}

function summary(xs: number[]): { min: number; median: number; max: number } {
  const s = [...xs].sort((a, b) => a - b);
  return { min: s[0]!, median: s[Math.floor((s.length - 1) / 2)]!, max: s[s.length - 1]! };
}

function report(what: string, ours: number[], base: number[], baseName: string): void {
  const a = summary(ours), b = summary(base);
  const f = (x: { min: number; median: number; max: number }) => `${x.min.toFixed(1)}/${x.median.toFixed(1)}/${x.max.toFixed(1)} ms`;
  const ratios = ours.map((o, i) => o / base[i]!);
  const r = summary(ratios);
  console.log(`${what}\n  fulcrum  min/median/max ${f(a)}\n  ${baseName.padEnd(8)} min/median/max ${f(b)}\n  ratio (fulcrum/${baseName}, per run) min/median/max ${r.min.toFixed(3)}/${r.median.toFixed(3)}/${r.max.toFixed(3)}`);
}

const vip = (i: number) => `172.16.${i >> 8}.${i & 255}`;
const backend = (i: number, j: number) => `10.200.${j}.${(i % 250) + 1}`;

function desiredInput(weightOf: (i: number, j: number) => number): object {
  const services = [];
  for (let i = 0; i < SERVICES; i++) {
    const backends = [];
    for (let j = 0; j < BACKENDS; j++) backends.push({ address: backend(i, j), port: 8080, weight: weightOf(i, j) });
    services.push({ name: `svc${i}`, address: vip(i), port: 80, scheduler: 'wlc', forwarding: 'nat', backends });
  }
  return { services };
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('run as root inside the IPVS VM (see the header)');
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-bench-'));
  // Destinations must be routable unicast addresses ("address not unicast" otherwise).
  await sh('ip', ['link', 'add', 'fbench0', 'type', 'dummy']).catch(() => undefined);
  await sh('ip', ['link', 'set', 'fbench0', 'up']);
  await sh('ip', ['addr', 'replace', '10.200.255.254/16', 'dev', 'fbench0']);
  await sh('ipvsadm', ['-C']);

  const restore = join(dir, 'restore.txt');
  const lines: string[] = [];
  for (let i = 0; i < SERVICES; i++) {
    lines.push(`-A -t ${vip(i)}:80 -s wlc`);
    for (let j = 0; j < BACKENDS; j++) lines.push(`-a -t ${vip(i)}:80 -r ${backend(i, j)}:8080 -m -w 1`);
  }
  writeFileSync(restore, lines.join('\n') + '\n');

  let t = performance.now();
  const desired: Service[] = [...parseDesiredState(desiredInput(() => 1)).services];
  console.log(`${SERVICES} services x ${BACKENDS} backends; model parse (zod) took ${(performance.now() - t).toFixed(0)} ms (not counted below)`);

  // 1. Full apply from empty.
  // The kernel keeps deleted destinations in a per-netns "dest trash" for minutes, and every
  // destination add walks that list linearly (ip_vs_trash_get_dest): after a flush of 100,000
  // destinations, re-adding them costs O(n^2) in the kernel, whoever sends them. An untimed
  // ipvsadm -R / -C first, so that each timed run starts after a flush of the same table and
  // both sides pay the same trash walk (without it, the side measured second pays it alone).
  await sh('ipvsadm', ['-R'], restore);
  await sh('ipvsadm', ['-C']);
  const fullOurs: number[] = [], fullBase: number[] = [];
  let reconciler: IpvsReconciler | undefined;
  for (let rep = 0; rep < REPEATS_FULL; rep++) {
    await sh('ipvsadm', ['-C']);
    fullBase.push(await time(() => sh('ipvsadm', ['-R'], restore)));
    await sh('ipvsadm', ['-C']);
    await reconciler?.close();
    const stateDir = join(dir, `state${rep}`);
    reconciler = new IpvsReconciler({ client: await openIpvsClient(), stateDir });
    const r = reconciler;
    fullOurs.push(await time(async () => {
      const res = await r.reconcile(desired);
      if (res.steps.length !== SERVICES * (BACKENDS + 1)) throw new Error(`expected ${SERVICES * (BACKENDS + 1)} steps, got ${res.steps.length}`);
    }));
    console.log(`  full apply run ${rep + 1}: ipvsadm -R ${fullBase.at(-1)!.toFixed(0)} ms, fulcrum ${fullOurs.at(-1)!.toFixed(0)} ms`);
  }
  report(`full apply of ${SERVICES} x ${BACKENDS} from empty`, fullOurs, fullBase, 'ipvsadm -R');

  // 2. One weight change in the full table.
  const one: number[] = [], oneBase: number[] = [];
  const target = Math.floor(SERVICES / 2);
  const client = await openIpvsClient();
  for (let rep = 0; rep < REPEATS; rep++) {
    const w = 2 + rep;
    const changed = [...desired];
    changed[target] = parseDesiredState({
      services: [{ name: `svc${target}`, address: vip(target), port: 80, scheduler: 'wlc', forwarding: 'nat',
        backends: Array.from({ length: BACKENDS }, (_, j) => ({ address: backend(target, j), port: 8080, weight: j === 0 ? w : 1 })) }],
    }).services[0]!;
    const r = reconciler!;
    one.push(await time(async () => {
      const res = await r.reconcile(changed);
      if (res.steps.length !== 1 || res.fullRead) throw new Error(`expected one targeted step, got ${res.steps.length} (fullRead ${res.fullRead})`);
    }));
    // Put it back with ipvsadm -e (the baseline doing the same edit), then resync our view.
    oneBase.push(await time(() => sh('ipvsadm', ['-e', '-t', `${vip(target)}:80`, '-r', `${backend(target, 0)}:8080`, '-m', '-w', '1'])));
    const check = await client.listDestinations({ family: 'inet', protocol: 'tcp', address: vip(target), port: 80 });
    if (check.find((d) => d.address === backend(target, 0))?.weight !== 1) throw new Error('ipvsadm -e did not apply');
    await r.reconcile(desired); // weight 1 again in desired: nothing to do but keeps the cache true
  }
  if (REPEATS > 0) report('one backend weight change in the full table (plan + apply)', one, oneBase, 'ipvsadm -e');
  if (REPEATS > 0) console.log(`  fulcrum runs: ${one.map((x) => x.toFixed(1)).join(' ')} ms; ipvsadm -e runs: ${oneBase.map((x) => x.toFixed(1)).join(' ')} ms`);

  // 3. Dump.
  const dump: number[] = [], dumpBase: number[] = [];
  for (let rep = 0; rep < REPEATS_DUMP; rep++) {
    dumpBase.push(await time(() => sh('ipvsadm', ['-Sn'])));
    dump.push(await time(async () => {
      // Like ipvsadm -Sn/-Ln, no counters are shown, so none are decoded.
      const services = await client.listServices({ stats: false });
      const dests = await listDestinationsOf(client, services.map((s) => s.key), { stats: false });
      const text = formatIpvsadmList(await client.info(), services.map((service, i) => ({ service, dests: dests[i]! })));
      if (services.length !== SERVICES || text.length === 0) throw new Error(`dumped ${services.length} services`);
    }));
  }
  if (REPEATS_DUMP > 0) report(`dump of ${SERVICES} x ${BACKENDS} (services + destinations, formatted)`, dump, dumpBase, 'ipvsadm -Sn');

  await client.close();
  await reconciler?.close();
  await sh('ipvsadm', ['-C']);
  await sh('ip', ['link', 'del', 'fbench0']);
  rmSync(dir, { recursive: true, force: true });
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
