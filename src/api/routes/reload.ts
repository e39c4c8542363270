import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import { FulcrumError } from '../../errors.js';
import { ChangeResultSchema, errorResponses, sendChange, WriteQuery, type ApiDeps } from '../common.js';

const ReloadResultSchema = ChangeResultSchema.extend({
  /** Settings of the `agent:` section that differ from the running ones: they take effect at the next start. */
  restartNeeded: z.array(z.string()),
});

/** POST /v1/reload: re-read the config file and apply it, as SIGHUP does (admin). */
export const reloadPlugin: FastifyPluginAsync<ApiDeps> = async (app, { reload }) => {
  app.post('/v1/reload', {
    schema: {
      tags: ['state'],
      summary: 'Re-read the config file and apply its desired state atomically (as SIGHUP does); a file that fails validation is refused and nothing changes',
      querystring: WriteQuery,
      response: { 200: ReloadResultSchema, ...errorResponses },
    },
  }, async (req, reply) => {
    if (!reload) throw new FulcrumError('CONFLICT', 'this agent runs without a config file (fulcrum agent -c FILE): there is nothing to reload');
    const { dryRun } = req.query as z.output<typeof WriteQuery>;
    const { change, restartNeeded } = await reload({ dryRun });
    return sendChange(reply, change, { restartNeeded });
  });
};
