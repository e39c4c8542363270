import { existsSync } from 'node:fs';
import { run } from './netns.js';

/**
 * Helpers for the VM tier (IPVS inside the qemu guest of scripts/vm/run.sh). Tests there share the
 * guest's one IPVS table and run one at a time (--test-concurrency=1); each starts from and leaves
 * an empty table.
 */

/** Why IPVS tests cannot run here, or undefined when they can. */
export function ipvsSkipReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (IPVS)';
  if (!existsSync('/proc/net/ip_vs')) {
    return 'this kernel has no IPVS (/proc/net/ip_vs missing); run the VM tier: bash scripts/vm/run-tier.sh';
  }
  if (!existsSync('/usr/sbin/ipvsadm') && !existsSync('/sbin/ipvsadm')) return 'needs ipvsadm (apt package ipvsadm)';
  return undefined;
}

/** Runs ipvsadm with an argv array; throws with its stderr on failure. */
export async function ipvsadm(...args: string[]): Promise<string> {
  return (await run('ipvsadm', args)).stdout;
}

/** Clears the guest's IPVS table (services and sync daemons) so a test starts from nothing. */
export async function resetIpvs(): Promise<void> {
  await ipvsadm('-C');
  await run('ipvsadm', ['--stop-daemon', 'master'], { allowFail: true });
  await run('ipvsadm', ['--stop-daemon', 'backup'], { allowFail: true });
}
