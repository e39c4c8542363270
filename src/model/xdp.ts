import { z } from 'zod';
import { InterfaceName } from './primitives.js';

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

export const XdpSettingsSchema = z
  .object({
    /** Interfaces the program attaches to: the client side and the backend side (nat needs both). */
    interfaces: z.array(XdpInterfaceSchema).default([]),
    /** Entries of the LRU connection table (and of the nat reply table). */
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
