import type { FastifyPluginAsync } from 'fastify';
import type { ServerResponse } from 'node:http';
import { z } from 'zod';
import type { FulcrumEvent } from '../../events.js';
import type { ApiDeps } from '../common.js';

const HEARTBEAT_MS = 15_000;

/**
 * /v1/events: Server-Sent Events of applies, drift repairs, health and VRRP transitions. A client
 * that reconnects with Last-Event-ID (or ?since=) first gets what it missed from the bus's ring.
 */
export const eventsPlugin: FastifyPluginAsync<ApiDeps> = async (app, { events }) => {
  const open = new Set<ServerResponse>();
  app.addHook('onClose', async () => {
    for (const res of open) res.end();
  });

  const Query = z.object({ since: z.coerce.number().int().min(0).optional().describe('replay events after this sequence number') }).strict();

  app.get('/v1/events', {
    schema: { tags: ['events'], summary: 'Event stream (text/event-stream); honours Last-Event-ID', querystring: Query },
  }, (req, reply) => {
    const header = req.headers['last-event-id'];
    const fromHeader = typeof header === 'string' && /^\d+$/.test(header) ? Number(header) : undefined;
    const since = fromHeader ?? (req.query as z.output<typeof Query>).since;
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    res.write('retry: 2000\n\n');
    const send = (e: FulcrumEvent) => res.write(`id: ${e.seq}\nevent: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`);
    if (since !== undefined) for (const e of events.recent(since)) send(e);
    const unsubscribe = events.subscribe(send);
    const beat = setInterval(() => res.write(': keep-alive\n\n'), HEARTBEAT_MS);
    open.add(res);
    const done = () => {
      clearInterval(beat);
      unsubscribe();
      open.delete(res);
    };
    req.raw.on('close', done);
    res.on('close', done);
  });
};
