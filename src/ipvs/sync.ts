import { join } from 'node:path';
import { z } from 'zod';
import { FulcrumError } from '../errors.js';
import type { PlannedStep } from '../dataplane/types.js';
import type { IpvsSync } from '../model/ipvs.js';
import { StateFile } from '../util/state-file.js';
import { readSysctl, writeSysctl } from '../net/sysctl.js';
import type { IpvsClient, IpvsSyncDaemon } from './types.js';

/**
 * The IPVS connection-sync daemons of this node, kept as the `ipvs.sync` section says.
 *
 * Design (docs/ipvs.md): every node runs BOTH a master daemon (it multicasts the state of the
 * connections it carries) and a backup daemon (it enters the connections its peers send into its
 * own table), with the same sync id on every node of the group. Whichever node holds the VIP
 * syncs to the others, so a failover and the failback after it both find the connections; the
 * daemons do not follow VRRP state, so no connection that opens during a transition is missed.
 * The kernel never loops a node's own sync messages back to it (IP_MULTICAST_LOOP off), and a
 * backup accepts only messages of its sync id, which is what keepalived's `lvs_sync_daemon` sends.
 */

export type DaemonState = IpvsSyncDaemon['state'];
const STATES: readonly DaemonState[] = ['master', 'backup'];

/** What the kernel uses for a parameter Fulcrum leaves out (net/netfilter/ipvs/ip_vs_sync.c). */
const KERNEL_DEFAULTS = { port: 8848, ttl: 1, groupV4: '224.0.0.81' } as const;

/** /proc/sys/net/ipv4/vs/<name> of the agent's network namespace; a fake in unit tests. */
export interface SysctlPort {
  read(name: string): string | undefined;
  write(name: string, value: string): void;
}

export const procSysctls: SysctlPort = {
  read(name) {
    // An unreadable sysctl plans a write, whose failure then says what went wrong.
    try {
      return readSysctl(['net', 'ipv4', 'vs', name]);
    } catch {
      return undefined;
    }
  },
  write(name, value) {
    try {
      writeSysctl(['net', 'ipv4', 'vs', name], value);
    } catch (e) {
      throw new FulcrumError('APPLY_FAILED', `cannot set net.ipv4.vs.${name} = ${value}: ${(e as Error).message}`, { cause: e });
    }
  },
};

export function desiredDaemons(sync: IpvsSync | undefined): IpvsSyncDaemon[] {
  if (!sync) return [];
  return STATES.map((state) => ({
    state, interface: sync.interface, syncId: sync.syncId,
    ...(sync.maxLength !== undefined ? { maxLength: sync.maxLength } : {}),
    ...(sync.port !== undefined ? { port: sync.port } : {}),
    ...(sync.ttl !== undefined ? { ttl: sync.ttl } : {}),
    ...(sync.group !== undefined ? { group: sync.group } : {}),
  }));
}

/**
 * The sysctls sync needs: protocol version 1 (it carries timeouts, IPv6 and firewall marks;
 * keepalived's peers speak it), the refresh period, the retries of a refresh, and
 * sync_threshold. The kernel (ip_vs_sync_conn_needed) syncs a connection only when its packet
 * count modulo sync_period (the threshold's second value, default 50) equals the threshold;
 * sync_refresh_period only holds syncs back. So with "3 50" a connection that sends one packet
 * every 30 s is synced at its 3rd packet and then some 25 minutes later, and its entry expires on
 * the peers long before. Period 0 with a refresh period makes every packet a candidate, held
 * back until refreshPeriod has passed since the last sync: each connection is synced at most once
 * per refreshPeriod, quiet or busy. With refreshPeriod 0 the kernel's "3 50" is kept.
 */
export function desiredSysctls(sync: IpvsSync | undefined): Array<[string, string]> {
  if (!sync) return [];
  return [['sync_version', '1'], ['sync_refresh_period', String(sync.refreshPeriod)], ['sync_retries', String(sync.retries)],
    ['sync_threshold', sync.refreshPeriod > 0 ? '3 0' : '3 50']];
}

/** A sysctl value as written here: /proc prints a vector (sync_threshold) tab-separated. */
const sysctlValue = (v: string | undefined) => v?.split(/\s+/).join(' ');

/** The running daemon is the wanted one (parameters left out compare with the kernel's defaults). */
export function sameDaemon(want: IpvsSyncDaemon, have: IpvsSyncDaemon): boolean {
  const group = (d: IpvsSyncDaemon) => d.group ?? (want.group?.includes(':') ? undefined : KERNEL_DEFAULTS.groupV4);
  return want.state === have.state && want.interface === have.interface && want.syncId === have.syncId
    && (want.maxLength === undefined || want.maxLength === have.maxLength)
    && (want.port ?? KERNEL_DEFAULTS.port) === (have.port ?? KERNEL_DEFAULTS.port)
    && (want.ttl ?? KERNEL_DEFAULTS.ttl) === (have.ttl ?? KERNEL_DEFAULTS.ttl)
    && group(want) === group(have);
}

export type SyncStep =
  | { kind: 'stop-sync-daemon'; state: DaemonState; description: string }
  | { kind: 'start-sync-daemon'; daemon: IpvsSyncDaemon; description: string }
  | { kind: 'set-sysctl'; name: string; value: string; previous: string | undefined; description: string };

const daemonText = (d: IpvsSyncDaemon) =>
  `${d.state} sync daemon on ${d.interface}, sync id ${d.syncId}${d.group ? `, group ${d.group}` : ''}${d.port ? `, port ${d.port}` : ''}${d.ttl ? `, ttl ${d.ttl}` : ''}${d.maxLength ? `, maxlen ${d.maxLength}` : ''}`;

/**
 * Pure: the steps from what runs to what the section asks for. A daemon Fulcrum did not start
 * (keepalived's, an operator's `ipvsadm --start-daemon`) is never stopped; when it is in the way
 * of the wanted one the plan has a conflict instead of steps for it. `sysctl` gives values as
 * observe() keeps them (vectors space-separated).
 */
export function planSync(sync: IpvsSync | undefined, running: readonly IpvsSyncDaemon[], owned: ReadonlySet<DaemonState>, sysctl: (name: string) => string | undefined): { steps: SyncStep[]; conflicts: string[] } {
  const steps: SyncStep[] = [];
  const conflicts: string[] = [];
  const wanted = desiredDaemons(sync);
  for (const state of STATES) {
    const want = wanted.find((d) => d.state === state);
    const have = running.find((d) => d.state === state);
    if (have && !owned.has(state)) {
      if (want && !sameDaemon(want, have))
        conflicts.push(`a ${daemonText(have)} runs that Fulcrum did not start; it is in the way of the ${daemonText(want)} (stop it with ipvsadm --stop-daemon ${state}, or give ipvs.sync its settings)`);
      continue;
    }
    if (have && (!want || !sameDaemon(want, have))) steps.push({ kind: 'stop-sync-daemon', state, description: `- ${daemonText(have)}` });
    if (want && (!have || !sameDaemon(want, have))) steps.push({ kind: 'start-sync-daemon', daemon: want, description: `+ ${daemonText(want)}` });
  }
  for (const [name, value] of desiredSysctls(sync)) {
    const previous = sysctl(name);
    if (previous !== value) steps.push({ kind: 'set-sysctl', name, value, previous, description: `~ net.ipv4.vs.${name} = ${value}${previous === undefined ? '' : ` (was ${previous})`}` });
  }
  return { steps, conflicts };
}

const OwnedSchema = z.object({ owned: z.array(z.enum(['master', 'backup'])) }).strict();

export interface SyncStatus {
  /** The daemons the kernel runs (read at the last reconcile), ours or not. */
  daemons: Array<IpvsSyncDaemon & { owned: boolean }>;
  sysctls: Record<string, string | undefined>;
}

/**
 * Keeps the daemons and sysctls as desired (drift repair on every full reconcile). Ownership is
 * durable and recorded before a start and dropped after a stop, so a crash between the two never
 * leaves a daemon Fulcrum started and then forgets.
 */
export class IpvsSyncDaemons {
  private readonly file: StateFile<typeof OwnedSchema>;
  private readonly owned: Set<DaemonState>;
  private last: SyncStatus = { daemons: [], sysctls: {} };

  constructor(private readonly client: IpvsClient, stateDir: string, private readonly sysctls: SysctlPort = procSysctls) {
    this.file = new StateFile(join(stateDir, 'ipvs-sync-owned.json'), 1, OwnedSchema, 'IPVS sync daemon ownership record');
    this.owned = new Set(this.file.load()?.owned ?? []);
  }

  async reconcile(sync: IpvsSync | undefined, options: { dryRun: boolean }): Promise<PlannedStep[]> {
    // Nothing asked, nothing ours: no kernel read (a node without sync pays nothing).
    if (!sync && this.owned.size === 0) return [];
    const names = desiredSysctls(sync).map(([n]) => n);
    const { running, sysctls } = await this.observe(names);
    const { steps, conflicts } = planSync(sync, running, this.owned, (n) => sysctls[n]);
    if (conflicts.length) throw new FulcrumError('CONFLICT', `ipvs.sync: ${conflicts.join('; ')}`);
    const planned = steps.map((s) => ({ kind: s.kind, service: 'ipvs.sync', description: s.description }));
    if (options.dryRun) return planned;
    for (const step of steps) await this.apply(step);
    if (steps.length) await this.observe(names); // status shows what the kernel runs now
    return planned;
  }

  /** Reads the running daemons and the named sysctls, and keeps them for status(). */
  private async observe(names: readonly string[]): Promise<{ running: IpvsSyncDaemon[]; sysctls: Record<string, string | undefined> }> {
    const running = await this.client.listDaemons();
    const sysctls = Object.fromEntries(names.map((n) => [n, sysctlValue(this.sysctls.read(n))]));
    this.last = { daemons: running.map((d) => ({ ...d, owned: this.owned.has(d.state) })), sysctls };
    return { running, sysctls };
  }

  private async apply(step: SyncStep): Promise<void> {
    switch (step.kind) {
      case 'stop-sync-daemon':
        await this.client.stopDaemon({ state: step.state });
        this.owned.delete(step.state);
        this.save();
        return;
      case 'start-sync-daemon':
        this.owned.add(step.daemon.state);
        this.save();
        await this.client.startDaemon(step.daemon);
        return;
      case 'set-sysctl':
        this.sysctls.write(step.name, step.value);
        return;
    }
  }

  private save(): void {
    this.file.save({ owned: [...this.owned].sort() });
  }

  status(): SyncStatus {
    return this.last;
  }

  /** Stops the daemons Fulcrum started (`fulcrum agent --cleanup`); the sysctls stay as they are. */
  async cleanup(): Promise<void> {
    const running = await this.client.listDaemons();
    for (const state of [...this.owned]) {
      if (running.some((d) => d.state === state)) await this.client.stopDaemon({ state });
      this.owned.delete(state);
      this.save();
    }
  }
}
