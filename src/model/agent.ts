import { z } from 'zod';

/** Settings of the agent process itself: API, store, reconcile loop (issue 4 fills this in). */
export const AgentSettingsSchema = z.object({}).strict();
export type AgentSettings = z.infer<typeof AgentSettingsSchema>;
