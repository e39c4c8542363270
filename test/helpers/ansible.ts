import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The ansible tier's plumbing: the collection in ansible/ made reachable as fulcrum.lb (a symlink
 * for ansible-playbook and ansible-doc, a copy for ansible-test, which wants the real path to end in
 * ansible_collections/NS/NAME), Debian's python first in PATH (a pyenv shim would shadow the one
 * that has ansible's dependencies), and a child-process runner with argument arrays.
 */
export const REPO = fileURLToPath(new URL('../../../', import.meta.url));
export const COLLECTION_SRC = join(REPO, 'ansible');
export const PATH = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'].join(':');

export function ansibleSkipReason(): string | undefined {
  for (const tool of ['/usr/bin/ansible-playbook', '/usr/bin/ansible-test', '/usr/bin/ansible-doc', '/usr/bin/yamllint'])
    if (!existsSync(tool)) return `needs ${tool} (bash scripts/setup.sh installs ansible-core and yamllint)`;
  return undefined;
}

export interface Collections {
  /** ANSIBLE_COLLECTIONS_PATH */
  path: string;
  /** ansible_collections/fulcrum/lb in it */
  root: string;
  dispose(): void;
}

/** A temp collections dir; `copy` for ansible-test (no symlink), else a symlink to ansible/. */
export function collections(opts: { copy?: boolean } = {}): Collections {
  const path = mkdtempSync(join(tmpdir(), 'fl-ansible-'));
  const ns = join(path, 'ansible_collections', 'fulcrum');
  mkdirSync(ns, { recursive: true });
  const root = join(ns, 'lb');
  if (opts.copy) cpSync(COLLECTION_SRC, root, { recursive: true, filter: (src) => !src.includes(`${join('tests', 'output')}`) });
  else symlinkSync(COLLECTION_SRC, root);
  return { path, root, dispose: () => rmSync(path, { recursive: true, force: true }) };
}

export interface Ran { code: number; stdout: string; stderr: string }

export function ansibleEnv(collectionsPath: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    ...process.env,
    PATH,
    ANSIBLE_COLLECTIONS_PATH: collectionsPath,
    ANSIBLE_NOCOLOR: '1',
    ANSIBLE_FORCE_COLOR: '0',
    ANSIBLE_HOST_KEY_CHECKING: 'False',
    ANSIBLE_RETRY_FILES_ENABLED: 'False',
    ANSIBLE_LOCAL_TEMP: join(collectionsPath, 'tmp'),
    ANSIBLE_REMOTE_TEMP: join(collectionsPath, 'remote-tmp'),
    ANSIBLE_DEPRECATION_WARNINGS: 'False',
    ...extra,
  };
}

/** Runs `cmd args` (no shell) and resolves with its exit code and output, never rejecting. */
export function sh(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {}): Promise<Ran> {
  return new Promise((resolve) => {
    execFile(cmd, args, { env: opts.env ?? { ...process.env, PATH }, cwd: opts.cwd, timeout: opts.timeoutMs ?? 300_000, maxBuffer: 256 << 20 },
      (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
        resolve({ code, stdout: String(stdout), stderr: String(stderr) });
      });
  });
}

/** The PLAY RECAP of an ansible-playbook run: per host, ok/changed/failed/... counts. */
export function recap(stdout: string): Map<string, Record<string, number>> {
  const out = new Map<string, Record<string, number>>();
  const tail = stdout.slice(stdout.lastIndexOf('PLAY RECAP'));
  for (const line of tail.split('\n').slice(1)) {
    const m = /^(\S+)\s+:\s+(.*)$/.exec(line.trim());
    if (!m) continue;
    const counts: Record<string, number> = {};
    for (const kv of m[2]!.trim().split(/\s+/)) {
      const [k, v] = kv.split('=');
      if (k && v !== undefined) counts[k] = Number(v);
    }
    out.set(m[1]!, counts);
  }
  return out;
}
