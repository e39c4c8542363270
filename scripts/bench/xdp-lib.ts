import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { encodeStruct, loadObject, pinThreadToCpu, possibleCpus, xdpContext, XdpAction, type BpfObject, type BpfProgram, type LoadOptions } from '../../src/bpf/index.js';
import { parsePacket } from './packet.js';

/**
 * XDP packet cost through BPF_PROG_TEST_RUN, corrected for the fact that `repeat > 1` re-runs the
 * program on the same, already rewritten buffer (see docs/bench.md and GUIDE.md "Measuring"):
 *
 *   cost(X) = T(restore -> X) - (T(restore -> bare) - T(bare))
 *
 * restore (bpf/bench/bench_restore.bpf.c) writes the original packet back before every repetition and
 * tail-calls X; the same restore in front of the bare XDP_TX program (bpf/bench/bench_bare.bpf.c) measures
 * what restore itself costs. Every run happens on one CPU (this thread is pinned with
 * sched_setaffinity), after one priming run on that CPU (so per-CPU and LRU tables hold the flow).
 * The three series are interleaved run by run, and cost is computed per run.
 */

export interface Stats {
  min: number;
  median: number;
  max: number;
}

export function stats(xs: number[]): Stats {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return { min: NaN, median: NaN, max: NaN };
  const mid = s.length >> 1;
  const median = s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
  return { min: s[0]!, median, max: s[s.length - 1]! };
}

export const VERDICTS: Record<number, string> = Object.fromEntries(Object.entries(XdpAction).map(([k, v]) => [v, `XDP_${k}`]));

const here = dirname(fileURLToPath(import.meta.url));
/** bpf/build of the repository (dist/scripts/bench -> ../../../bpf/build). */
export const DEFAULT_BPF_DIR = join(here, '..', '..', '..', 'bpf', 'build');

export interface RunOptions {
  /** Repetitions per BPF_PROG_TEST_RUN (default 1,000,000). */
  repeat?: number;
  /** Interleaved runs per series; min/median/max are over these (default 5). */
  runs?: number;
  /** CPU to pin to (default: the last possible CPU). */
  cpu?: number;
}

export interface CaseOptions extends RunOptions {
  name: string;
  program: BpfProgram;
  packet: Buffer;
  /** Vary source port (and two bytes of the source address) per repetition: every packet a new flow. */
  newFlowPerPacket?: boolean;
  /** Expected verdict of a single run (checked before timing; a mismatch throws). */
  expectVerdict: number;
  /** Checks the output packet of that single run; throws (or returns a message) on mismatch. */
  checkOutput?: (output: Buffer, input: Buffer) => void | string;
  /** The packet arrives on this interface (of the caller's netns); default: none given (the kernel uses lo). */
  ingressIfindex?: number;
}

export interface Measurement {
  name: string;
  verdict: string;
  output: Buffer;
  repeat: number;
  runs: number;
  cpu: number;
  /** ns per packet of each series. */
  bare: Stats;
  restoreBare: Stats;
  restoreX: Stats;
  /** Corrected ns per packet of X, per run. */
  cost: Stats;
  /** cost(X) / T(bare), per run. */
  ratio: Stats;
}

function packetConfig(restore: BpfObject, packet: Buffer, newFlow: boolean): Buffer {
  const layout = restore.btf.structLayout('bench_packet'); // from bpf/bench/bench_restore.h, never mirrored by hand
  const pktMember = layout.members.find((m) => m.name === 'pkt');
  if (!pktMember || packet.length > pktMember.size) throw new Error(`packet of ${packet.length} bytes exceeds bench_packet.pkt`);
  let sportOff = 0, saddrOff = 0, ipCsumOff = 0, l4CsumOff = 0;
  if (newFlow) {
    const p = parsePacket(packet);
    sportOff = p.l4Offset;
    // the two low bytes of the source address
    saddrOff = p.l3Offset + (p.family === 4 ? 12 + 2 : 8 + 14);
    ipCsumOff = p.family === 4 ? p.l3Offset + 10 : 0;
    const udpNoCsum = p.proto === 17 && p.family === 4 && packet.readUInt16BE(p.l4Offset + 6) === 0;
    l4CsumOff = udpNoCsum ? 0 : p.l4Offset + (p.proto === 6 ? 16 : 6);
  }
  const pkt = Buffer.alloc(pktMember.size);
  packet.copy(pkt);
  return encodeStruct(layout, { len: packet.length, new_flow: newFlow ? 1 : 0, sport_off: sportOff, saddr_off: saddrOff, ipcsum_off: ipCsumOff, l4csum_off: l4CsumOff, pkt });
}

/** Holds the bare and restore programs; measure() any number of programs against them. */
export class XdpBench {
  private constructor(
    private readonly bareObj: BpfObject,
    private readonly restoreObj: BpfObject,
  ) {}

  static open(bpfDir = DEFAULT_BPF_DIR): XdpBench {
    const bare = loadObject(join(bpfDir, 'bench_bare.bpf.o'));
    try {
      return new XdpBench(bare, loadObject(join(bpfDir, 'bench_restore.bpf.o')));
    } catch (e) {
      bare.close();
      throw e;
    }
  }

  get bare(): BpfProgram {
    return this.bareObj.program('bench_bare');
  }

  #ctx: Buffer | undefined;

  #run(prog: BpfProgram, packet: Buffer, repeat: number) {
    return prog.testRun({ data: packet, repeat, ...(this.#ctx ? { ctx: this.#ctx } : {}) });
  }

  #setIngress(packet: Buffer, ifindex: number | undefined): void {
    this.#ctx = ifindex === undefined ? undefined : xdpContext(packet.length, { ingressIfindex: ifindex });
  }

  #setTarget(prog: BpfProgram): void {
    this.restoreObj.map('bench_next').setTailCall(0, prog);
  }

  #setPacket(packet: Buffer, newFlow: boolean): void {
    const key = Buffer.alloc(4);
    this.restoreObj.map('bench_pkt').update(key, packetConfig(this.restoreObj, packet, newFlow));
  }

  measure(c: CaseOptions): Measurement {
    const repeat = c.repeat ?? 1_000_000;
    const runs = c.runs ?? 5;
    const cpu = c.cpu ?? possibleCpus() - 1;
    const restore = this.restoreObj.program('bench_restore');
    const unpin = pinThreadToCpu(cpu);
    try {
      this.#setIngress(c.packet, c.ingressIfindex);
      this.#setPacket(c.packet, c.newFlowPerPacket ?? false);
      // One checked run of X through restore (also primes per-CPU/LRU state on this CPU).
      this.#setTarget(c.program);
      const once = this.#run(restore, c.packet, 1);
      if (once.retval !== c.expectVerdict) {
        throw new Error(`${c.name}: verdict ${VERDICTS[once.retval] ?? once.retval}, expected ${VERDICTS[c.expectVerdict] ?? c.expectVerdict}`);
      }
      const complaint = c.checkOutput?.(once.data, c.packet);
      if (typeof complaint === 'string') throw new Error(`${c.name}: output packet: ${complaint}`);
      // Restore must have been transparent for the bare program too.
      this.#setTarget(this.bare);
      const viaRestore = this.#run(restore, c.packet, 1);
      if (viaRestore.retval !== XdpAction.TX) throw new Error(`${c.name}: restore -> bare gave ${VERDICTS[viaRestore.retval]}`);

      const bare: number[] = [], rb: number[] = [], rx: number[] = [], cost: number[] = [], ratio: number[] = [];
      for (let i = 0; i < runs; i++) {
        const b = this.#run(this.bare, c.packet, repeat).durationNs;
        this.#setTarget(this.bare);
        const r0 = this.#run(restore, c.packet, repeat);
        this.#setTarget(c.program);
        const r1 = this.#run(restore, c.packet, repeat);
        if (r0.retval !== XdpAction.TX || r1.retval !== c.expectVerdict) {
          throw new Error(`${c.name}: verdict changed during timing (${VERDICTS[r0.retval]}, ${VERDICTS[r1.retval]})`);
        }
        bare.push(b); rb.push(r0.durationNs); rx.push(r1.durationNs);
        const x = r1.durationNs - (r0.durationNs - b);
        cost.push(x);
        ratio.push(x / b);
      }
      return {
        name: c.name, verdict: VERDICTS[once.retval] ?? String(once.retval), output: once.data, repeat, runs, cpu,
        bare: stats(bare), restoreBare: stats(rb), restoreX: stats(rx), cost: stats(cost), ratio: stats(ratio),
      };
    } finally {
      this.#ctx = undefined;
      unpin();
    }
  }

  /**
   * One BPF_PROG_TEST_RUN of restore -> program (the packet is restored before each of `repeat`
   * runs); returns the kernel's result of the last repetition. For checks and debugging.
   */
  runThroughRestore(program: BpfProgram, packet: Buffer, opts: { newFlowPerPacket?: boolean; repeat?: number } = {}) {
    this.#setPacket(packet, opts.newFlowPerPacket ?? false);
    this.#setTarget(program);
    return this.#run(this.restoreObj.program('bench_restore'), packet, opts.repeat ?? 1);
  }

  /** Plain `repeat` timing of a program WITHOUT restore (what a naive benchmark reports). */
  naive(prog: BpfProgram, packet: Buffer, opts: RunOptions = {}): Stats {
    const unpin = pinThreadToCpu(opts.cpu ?? possibleCpus() - 1);
    try {
      const xs: number[] = [];
      for (let i = 0; i < (opts.runs ?? 5); i++) xs.push(this.#run(prog, packet, opts.repeat ?? 1_000_000).durationNs);
      return stats(xs);
    } finally {
      unpin();
    }
  }

  close(): void {
    this.restoreObj.close();
    this.bareObj.close();
  }
}

export interface MeasureOptions extends RunOptions {
  objectPath: string;
  programName: string;
  loadOptions?: LoadOptions;
  /** Fills the object's maps before measuring (backends, VIPs...). */
  setup?: (obj: BpfObject) => void;
  packet: Buffer;
  newFlowPerPacket?: boolean;
  expectVerdict: number;
  checkOutput?: CaseOptions['checkOutput'];
  name?: string;
  bpfDir?: string;
}

/** One-shot: load the object, set it up, measure one program, close everything. */
export function measure(o: MeasureOptions): Measurement {
  const bench = XdpBench.open(o.bpfDir);
  try {
    const obj = loadObject(o.objectPath, o.loadOptions);
    try {
      o.setup?.(obj);
      const c: CaseOptions = {
        name: o.name ?? o.programName, program: obj.program(o.programName), packet: o.packet,
        newFlowPerPacket: o.newFlowPerPacket ?? false, expectVerdict: o.expectVerdict,
      };
      if (o.checkOutput) c.checkOutput = o.checkOutput;
      if (o.repeat !== undefined) c.repeat = o.repeat;
      if (o.runs !== undefined) c.runs = o.runs;
      if (o.cpu !== undefined) c.cpu = o.cpu;
      return bench.measure(c);
    } finally {
      obj.close();
    }
  } finally {
    bench.close();
  }
}

const f = (s: Stats, d = 1) => `${s.min.toFixed(d)}/${s.median.toFixed(d)}/${s.max.toFixed(d)}`;

/** One line per measurement: ns/packet and ratio to bare as min/median/max. */
export function formatMeasurement(m: Measurement): string {
  return `${m.name.padEnd(34)} ${m.verdict.padEnd(9)} cost ${f(m.cost)} ns  bare ${f(m.bare)} ns  ratio ${f(m.ratio, 2)}  (restore->bare ${f(m.restoreBare)}, restore->X ${f(m.restoreX)})`;
}

/**
 * The LB netns of the benches that run the agent's own program: veth d0 (10.1.0.254/16 and
 * 192.0.2.254/24) with a permanent neighbour entry for each backend, forwarding on.
 */
export function setUpBenchNetns(ns: string, backends: readonly string[]): void {
  const ip = (...args: string[]) => execFileSync('ip', ['-n', ns, ...args], { stdio: ['ignore', 'ignore', 'inherit'] });
  ip('link', 'set', 'lo', 'up');
  ip('link', 'add', 'd0', 'type', 'veth', 'peer', 'name', 'd0p');
  ip('link', 'set', 'd0', 'up');
  ip('link', 'set', 'd0p', 'up');
  ip('addr', 'add', '10.1.0.254/16', 'dev', 'd0');
  ip('addr', 'add', '192.0.2.254/24', 'dev', 'd0');
  backends.forEach((b, i) => ip('neigh', 'replace', b, 'lladdr', `02:be:00:00:00:${i.toString(16).padStart(2, '0')}`, 'dev', 'd0', 'nud', 'permanent'));
  execFileSync('ip', ['netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
}
