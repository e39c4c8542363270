import { z } from 'zod';

/** A VRRP instance (issue 6 fills this in). */
export const VrrpInstanceSchema = z.object({ name: z.string() }).strict();
export type VrrpInstance = z.infer<typeof VrrpInstanceSchema>;
