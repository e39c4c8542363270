import { z } from 'zod';
import { isIPv4, isIPv6 } from 'node:net';
import { InterfaceName, Port } from './primitives.js';

/**
 * Node-wide IPVS settings. `sync` runs the kernel's connection synchronisation (the IPVS sync
 * daemon, as keepalived's `lvs_sync_daemon`): this node sends the state of its connections to its
 * peers and keeps theirs, so that the node that takes a VIP over already knows the established
 * connections. See docs/ipvs.md for the design (both daemons on every node) and the sysctls.
 */

const McastGroup = z.string().refine((s) => (isIPv4(s) && Number(s.split('.')[0]) >= 224 && Number(s.split('.')[0]) <= 239) || (isIPv6(s) && s.toLowerCase().startsWith('ff')), {
  message: 'must be an IPv4 (224.0.0.0/4) or IPv6 (ff00::/8) multicast group',
});

export const IpvsSyncSchema = z
  .object({
    /** The interface the sync messages go out of and are received on (the LBs' shared link). */
    interface: InterfaceName,
    /** The sync id of the group: the same on every node of the pair (keepalived's `lvs_sync_daemon ... id`). */
    syncId: z.number().int().min(1).max(255),
    /** Multicast group (kernel default 224.0.0.81; IPv6 groups need an IPv6 address on the interface). */
    group: McastGroup.optional(),
    /** UDP port (kernel default 8848). */
    port: Port.optional(),
    /** Multicast TTL (kernel default 1: the LBs share a segment). */
    ttl: z.number().int().min(1).max(255).optional(),
    /** Largest sync message payload in bytes (kernel default: fits the interface MTU). */
    maxLength: z.number().int().min(256).max(65507).optional(),
    /**
     * Seconds after which an established connection is synced again on its next packet (sysctl
     * sync_refresh_period, with sync_threshold "3 0"; 0: the kernel's "3 50", only on state
     * changes and every 50 packets, which lets a quiet connection expire on the peers).
     */
    refreshPeriod: z.number().int().min(0).max(86400).default(10),
    /** Times a refreshed sync is resent when no packet follows (sysctl sync_retries, 0-3). */
    retries: z.number().int().min(0).max(3).default(0),
  })
  .strict();

export const IpvsSettingsSchema = z
  .object({
    sync: IpvsSyncSchema.optional(),
  })
  .strict();

export type IpvsSync = z.output<typeof IpvsSyncSchema>;
export type IpvsSettings = z.output<typeof IpvsSettingsSchema>;
