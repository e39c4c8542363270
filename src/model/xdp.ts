import { z } from 'zod';

/** Node-wide XDP settings: where the program attaches (issue 3 fills this in). */
export const XdpSettingsSchema = z.object({}).strict();
export type XdpSettings = z.infer<typeof XdpSettingsSchema>;
