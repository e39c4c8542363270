import { z } from 'zod';
import { InterfaceName, IpAddress, Port } from './primitives.js';

/**
 * Node-wide XDP settings: where the program attaches and how big its tables are. Map sizes are
 * fixed when the program is first loaded; changing them needs `fulcrum agent --cleanup` (the pinned
 * maps are reused as they are otherwise, so established flows survive agent restarts).
 */

const isPrime = (n: number): boolean => {
  if (n < 2) return false;
  for (let d = 2; d * d <= n; d++) if (n % d === 0) return false;
  return true;
};

export const XdpInterfaceSchema = z
  .object({
    name: InterfaceName,
    /** native = driver XDP (xdpdrv), generic = skb XDP (xdpgeneric, slower, works everywhere). */
    mode: z.enum(['native', 'generic']).default('native'),
  })
  .strict();

/**
 * Flow sync with the peer LB nodes (docs/ha.md, "XDP flow sync"): the program exports every flow it
 * places on a backend, the agent sends them to `peers` over UDP (HMAC-SHA256 with the shared secret
 * of `secretFile`) and writes theirs into its own connection table, so a node that takes a VIP over
 * keeps the connections on their backends.
 */
export const XdpSyncSchema = z
  .object({
    /** This node's address for sync messages (bound; the peers send here). */
    address: IpAddress,
    /** UDP port of the sync messages, the same on every node. */
    port: Port.default(8850),
    /** The other LB nodes' sync addresses. */
    peers: z.array(IpAddress).min(1, 'needs at least one peer address'),
    /** A file holding the shared secret (at least 16 bytes; a trailing newline is ignored). */
    secretFile: z.string().min(1).refine((p) => p.startsWith('/'), { message: 'must be an absolute path' }),
    /** Bytes of the kernel's export ring: a power of 2, at least two pages. */
    ringBytes: z.number().int().min(8192).max(1 << 30).refine((n) => (n & (n - 1)) === 0, { message: 'must be a power of 2 (e.g. 262144)' }).default(262_144),
    /** How long a starting node waits for its peers' snapshots before it may take a VIP over. */
    snapshotTimeoutSeconds: z.number().min(0).max(300).default(3),
    /** Messages whose timestamp is further than this from this node's clock are refused (replay). */
    maxClockSkewSeconds: z.number().min(1).max(3600).default(30),
  })
  .strict()
  .superRefine((s, ctx) => {
    s.peers.forEach((p, i) => {
      if (p === s.address) ctx.addIssue({ code: 'custom', path: ['peers', i], message: `${p} is this node's own sync address` });
      if (s.peers.indexOf(p) !== i) ctx.addIssue({ code: 'custom', path: ['peers', i], message: `duplicate peer ${p}` });
    });
  });

export type XdpSync = z.output<typeof XdpSyncSchema>;

export const XdpSettingsSchema = z
  .object({
    /** Interfaces the program attaches to: the client side and the backend side (nat needs both). */
    interfaces: z.array(XdpInterfaceSchema).default([]),
    /** Entries of the connection table (set-associative, 4 ways per set, the way idle longest evicted; rounded up to whole sets) and of the nat reply table. */
    conntrackSize: z.number().int().min(1024).max(16_777_216).default(262_144),
    /** Entries of each VIP's Maglev table: a prime, over 100x the largest backend count. */
    maglevTableSize: z
      .number()
      .int()
      .min(251)
      .max(1_000_003)
      .refine(isPrime, { message: 'must be a prime number (Maglev needs it), e.g. 65537' })
      .default(65_537),
    /** VIPs this node can carry (each takes 2 x maglevTableSize x 4 bytes of kernel memory). */
    maxVips: z.number().int().min(1).max(4096).default(256),
    /** Backend slots over all VIPs. */
    maxBackends: z.number().int().min(1).max(1_048_576).default(16_384),
    /** Detach the program when the agent shuts down (default: keep forwarding across restarts). */
    detachOnShutdown: z.boolean().default(false),
    /** Flow sync with the peer LB nodes (off when absent; turning it on or off needs fulcrum agent --cleanup). */
    sync: XdpSyncSchema.optional(),
  })
  .strict()
  .superRefine((s, ctx) => {
    const seen = new Map<string, number>();
    s.interfaces.forEach((i, n) => {
      const prev = seen.get(i.name);
      if (prev !== undefined) ctx.addIssue({ code: 'custom', path: ['interfaces', n, 'name'], message: `duplicate interface ${i.name} (also interfaces[${prev}])` });
      else seen.set(i.name, n);
    });
    const tableBytes = s.maxVips * 2 * s.maglevTableSize * 4;
    if (tableBytes > 4 * 1024 ** 3)
      ctx.addIssue({ code: 'custom', path: ['maxVips'], message: `maxVips x 2 x maglevTableSize x 4 bytes is ${Math.round(tableBytes / 1024 ** 2)} MiB; the limit is 4096 MiB` });
  });

export type XdpSettings = z.output<typeof XdpSettingsSchema>;
export type XdpSettingsInput = z.input<typeof XdpSettingsSchema>;
