import { execFile, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { promisify } from 'node:util';
import { existsSync } from 'node:fs';

const execFileP = promisify(execFile);

/**
 * Network namespaces as test hosts. Each test makes its own, with a unique prefix, and deletes
 * them in `after`. Commands run as argv arrays (never through a shell).
 */

export async function run(cmd: string, args: string[], opts: { allowFail?: boolean; timeoutMs?: number } = {}): Promise<{ stdout: string; stderr: string; code: number }> {
  try {
    const { stdout, stderr } = await execFileP(cmd, args, { timeout: opts.timeoutMs ?? 30_000, maxBuffer: 64 << 20 });
    return { stdout, stderr, code: 0 };
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string; code?: number | string };
    if (opts.allowFail) return { stdout: err.stdout ?? '', stderr: err.stderr ?? '', code: typeof err.code === 'number' ? err.code : 1 };
    throw new Error(`${cmd} ${args.join(' ')} failed: ${err.stderr ?? String(e)}`, { cause: e });
  }
}

let counter = 0;
/** A short unique name (interface names are at most 15 bytes). */
export function uniqueName(prefix: string): string {
  counter += 1;
  return `${prefix}${process.pid % 10000}${counter}`.slice(0, 15);
}

export class Netns {
  private constructor(readonly name: string) {}

  static async create(prefix = 'fl'): Promise<Netns> {
    const ns = new Netns(uniqueName(prefix));
    await run('ip', ['netns', 'add', ns.name]);
    await ns.exec('ip', ['link', 'set', 'lo', 'up']);
    return ns;
  }

  exec(cmd: string, args: string[], opts?: { allowFail?: boolean; timeoutMs?: number }) {
    return run('ip', ['netns', 'exec', this.name, cmd, ...args], opts);
  }

  spawn(cmd: string, args: string[], opts: SpawnOptions = {}): ChildProcess {
    return spawn('ip', ['netns', 'exec', this.name, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  }

  async delete(): Promise<void> {
    await run('ip', ['netns', 'pids', this.name], { allowFail: true }).then(async (r) => {
      for (const pid of r.stdout.split(/\s+/).filter(Boolean)) {
        try { process.kill(Number(pid), 'SIGKILL'); } catch { /* gone */ }
      }
    });
    await run('ip', ['netns', 'del', this.name], { allowFail: true });
  }
}

/** Creates a veth pair with one end in each namespace, addresses them and brings them up. */
export async function vethPair(
  a: Netns, aIf: string, aAddrs: string[],
  b: Netns, bIf: string, bAddrs: string[],
): Promise<void> {
  const tmpA = uniqueName('va'), tmpB = uniqueName('vb');
  await run('ip', ['link', 'add', tmpA, 'type', 'veth', 'peer', 'name', tmpB]);
  await run('ip', ['link', 'set', tmpA, 'netns', a.name]);
  await run('ip', ['link', 'set', tmpB, 'netns', b.name]);
  await a.exec('ip', ['link', 'set', tmpA, 'name', aIf]);
  await b.exec('ip', ['link', 'set', tmpB, 'name', bIf]);
  for (const [ns, ifn, addrs] of [[a, aIf, aAddrs], [b, bIf, bAddrs]] as const) {
    for (const addr of addrs) await ns.exec('ip', ['addr', 'add', addr, 'dev', ifn, ...(addr.includes(':') ? ['nodad'] : [])]);
    await ns.exec('ip', ['link', 'set', ifn, 'up']);
  }
}

/** Why kernel-tier tests cannot run here, or undefined when they can. */
export function netnsSkipReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (network namespaces)';
  if (!existsSync('/usr/sbin/ip') && !existsSync('/sbin/ip') && !existsSync('/usr/bin/ip')) return 'needs iproute2 (ip)';
  return undefined;
}
