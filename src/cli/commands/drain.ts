import type { Command } from '../command.js';
import { FulcrumError } from '../../errors.js';
import { parseEndpoint, formatEndpoint } from '../../model/index.js';
import { call, clientFrom, CLIENT_USAGE, parseCommandArgs, printJson } from '../client.js';

interface Progress { state: string; activeConnections: number; deadline?: string }

export const drainCommand: Command = {
  path: ['drain'],
  summary: 'drain a backend (ADDRESS:PORT, IPv6 as [ADDRESS]:PORT) out of a service',
  usage: `drain SERVICE BACKEND [--wait] [--dry-run] ${CLIENT_USAGE}`,
  async run(argv, io) {
    const args = parseCommandArgs(argv, { wait: { type: 'boolean' }, 'dry-run': { type: 'boolean' } }, 2);
    const [service, backend] = args.positionals as [string, string];
    const ep = parseEndpoint(backend);
    if (!ep) throw new FulcrumError('INVALID_REQUEST', `BACKEND: "${backend}" is not address:port (IPv6 as [address]:port)`);
    const path = `/v1/services/${encodeURIComponent(service)}/backends/${encodeURIComponent(formatEndpoint(ep.address, ep.port))}/drain`;
    const client = clientFrom(args.values, io.env);
    const dry = !!args.values['dry-run'];
    const res = (await call(client, 'POST', `${path}${dry ? '?dryRun=true' : ''}`)).body as { revision: number; changed: boolean; progress: Progress };
    if (args.output === 'json' && !args.values.wait) {
      printJson(io, res);
      return 0;
    }
    const show = (p: Progress) => `${service} ${backend}: ${p.state}${p.state === 'draining' ? `, ${p.activeConnections} active connection(s), deadline ${p.deadline ?? '?'}` : ''}\n`;
    if (args.output === 'table') io.stdout.write(dry ? `dry run: would drain ${backend} from ${service}\n` : show(res.progress));
    let progress = res.progress;
    // Polls once a second; bounded by the drain deadline the dataplane reports (or 10 minutes).
    const limit = Date.now() + 600_000;
    while (args.values.wait && !dry && progress.state === 'draining' && Date.now() < limit) {
      await new Promise((r) => setTimeout(r, 1000));
      progress = (await call(client, 'GET', path)).body as Progress;
      if (args.output === 'table') io.stdout.write(show(progress));
    }
    if (args.output === 'json') printJson(io, { ...res, progress });
    return 0;
  },
};
