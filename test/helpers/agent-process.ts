import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { run } from './netns.js';

/**
 * The real `fulcrum agent` process (dist/src/cli/main.js), optionally inside a network namespace
 * (nsenter --net keeps the host's /sys/fs/bpf visible, unlike `ip netns exec`), and the CLI run
 * the same way. The API port is the one the agent logs ("API listening").
 */
export const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

/**
 * How a process enters the netns: `nsenter --net` (the host's mounts, /sys/fs/bpf included), or
 * `ip netns exec`, which runs it in a new mount namespace with a fresh /sys (no bpffs mounted).
 */
export type NetnsLauncher = 'nsenter' | 'ip-netns-exec';

const prefix = (netns: string | undefined, argv: string[], launcher: NetnsLauncher = 'nsenter'): [string, string[]] =>
  !netns ? [argv[0]!, argv.slice(1)]
    : launcher === 'nsenter' ? ['nsenter', [`--net=/run/netns/${netns}`, ...argv]]
      : ['ip', ['netns', 'exec', netns, ...argv]];

export class AgentProcess {
  readonly logs: Array<Record<string, unknown>> = [];
  port = 0;
  /** The API's URL as the agent logs it (its address: api.host). */
  url = '';
  private exited: Promise<number | null>;

  private constructor(readonly proc: ChildProcess) {
    this.exited = new Promise((resolve) => proc.once('exit', (code, signal) => resolve(signal ? null : code)));
  }

  /** Starts the agent and waits until its API listens (or it exits: then throws with its stderr). */
  static async start(configPath: string, opts: { netns?: string; launcher?: NetnsLauncher; extraArgs?: string[]; timeoutMs?: number } = {}): Promise<AgentProcess> {
    const [cmd, args] = prefix(opts.netns, [process.execPath, MAIN, 'agent', '--config', configPath, ...(opts.extraArgs ?? [])], opts.launcher);
    const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, FULCRUM_LOG_LEVEL: 'info' } });
    const a = new AgentProcess(proc);
    let stderr = '';
    proc.stderr!.on('data', (c: Buffer) => { stderr += c.toString(); });
    const listening = new Promise<void>((resolve, reject) => {
      createInterface({ input: proc.stdout! }).on('line', (line) => {
        try {
          const rec = JSON.parse(line) as Record<string, unknown>;
          a.logs.push(rec);
          if (rec.msg === 'API listening') { a.port = rec.port as number; a.url = rec.url as string; resolve(); }
        } catch { /* not JSON */ }
      });
      void a.exited.then((code) => reject(new Error(`agent exited (${code}) before listening: ${stderr}`)));
      setTimeout(() => reject(new Error(`agent not listening within ${opts.timeoutMs ?? 60_000} ms: ${stderr}`)), opts.timeoutMs ?? 60_000).unref();
    });
    await listening;
    return a;
  }

  /** Runs the agent once to completion (e.g. --cleanup, or a config that must be refused). */
  static async once(configPath: string, extraArgs: string[], netns?: string): Promise<{ code: number; stdout: string; stderr: string }> {
    const [cmd, args] = prefix(netns, [process.execPath, MAIN, 'agent', '--config', configPath, ...extraArgs]);
    return run(cmd, args, { allowFail: true, timeoutMs: 60_000 });
  }

  get server(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  kill9(): Promise<number | null> {
    this.proc.kill('SIGKILL');
    return this.exited;
  }

  /** SIGTERM; resolves with the exit code. */
  stop(): Promise<number | null> {
    if (this.proc.exitCode !== null) return Promise.resolve(this.proc.exitCode);
    this.proc.kill('SIGTERM');
    return this.exited;
  }
}

/** `fulcrum WORDS... --server URL --token-file FILE`, in the netns when given. */
export async function fulcrum(words: string[], server: string, tokenFile: string, netns?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const [cmd, args] = prefix(netns, [process.execPath, MAIN, ...words, '--server', server, '--token-file', tokenFile]);
  return run(cmd, args, { allowFail: true, timeoutMs: 60_000 });
}
