import type { TransitionInfo } from './machine.js';

/**
 * Sync groups (keepalived vrrp_sync_group): the instances of a group fail over together. Pure
 * rules; the manager applies them to the members' state machines.
 */

export interface SyncMember {
  readonly name: string;
  readonly ownFault: string | undefined;
}

/** Where the other members go when `leader` makes transition `t`: into master, or into backup from master. */
export function followerMove(group: string, leader: string, t: TransitionInfo): { to: 'master' | 'backup'; reason: string } | undefined {
  if (t.to === 'master') return { to: 'master', reason: `sync group ${group}: ${leader} became master` };
  if (t.to === 'backup' && t.from === 'master') return { to: 'backup', reason: `sync group ${group}: ${leader} became backup` };
  return undefined;
}

/** A member in fault takes its whole group into fault: each member's group fault, in order. */
export function groupFaults(group: string, members: readonly SyncMember[]): (string | undefined)[] {
  return members.map((m) => {
    const other = members.find((o) => o !== m && o.ownFault !== undefined);
    return other ? `sync group ${group}: ${other.name} in fault (${other.ownFault})` : undefined;
  });
}
