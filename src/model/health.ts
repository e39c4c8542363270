import { z } from 'zod';

/**
 * Health-check section of a service (issue 5 fills this in: kinds, rise/fall, quorum, sorry server).
 * Until then a service may carry no health checks.
 */
export const HealthSchema = z.object({}).strict();
export type Health = z.infer<typeof HealthSchema>;
