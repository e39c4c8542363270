import type { Command } from '../command.js';
import { FulcrumError } from '../../errors.js';
import { formatEndpoint } from '../../model/index.js';
import { call, clientFrom, CLIENT_USAGE, parseCommandArgs, printJson } from '../client.js';
import type { Explanation, ExplainedBackend } from '../../dataplane/explain.js';

const SOURCE: Record<Explanation['source'], string> = {
  connection: 'an existing connection',
  scheduler: 'a new flow, placed by the scheduler',
  unpredictable: 'a new flow; the scheduler\'s pick cannot be predicted',
  none: 'no backend',
};

function line(b: ExplainedBackend): string {
  const conns = b.activeConnections !== undefined ? `, ${b.activeConnections} active / ${b.inactiveConnections ?? 0} inactive connections` : '';
  return `${formatEndpoint(b.address, b.port)} weight ${b.weight}, health ${b.health}${b.draining ? ', draining' : ''}${conns}`;
}

export const explainCommand: Command = {
  path: ['explain'],
  summary: 'which backend a client flow to a VIP reaches now, and why',
  usage: `explain --client ADDRESS[:PORT] --vip ADDRESS --port N [--proto tcp|udp] ${CLIENT_USAGE}`,
  async run(argv, io) {
    const args = parseCommandArgs(argv, { client: { type: 'string' }, vip: { type: 'string' }, port: { type: 'string' }, proto: { type: 'string' } }, 0);
    for (const k of ['client', 'vip', 'port'] as const) if (args.values[k] === undefined) throw new FulcrumError('INVALID_REQUEST', `--${k} is required: see --help`);
    const q = new URLSearchParams({ client: String(args.values.client), vip: String(args.values.vip), port: String(args.values.port), proto: String(args.values.proto ?? 'tcp') });
    const r = (await call(clientFrom(args.values, io.env), 'GET', `/v1/explain?${q.toString()}`)).body as Explanation;
    if (args.output === 'json') {
      printJson(io, r);
      return 0;
    }
    const f = r.flow;
    const from = f.clientPort !== undefined ? formatEndpoint(f.client, f.clientPort) : f.client;
    const out = [
      `flow:      ${f.protocol} ${from} -> ${formatEndpoint(f.vip, f.port)}`,
      `service:   ${r.service} (${r.dataplane})`,
      `backend:   ${r.backend ? line(r.backend) : '(none)'}`,
      `because:   ${SOURCE[r.source]}: ${r.reason}`,
      ...Object.entries(r.detail).map(([k, v]) => `  ${k}: ${String(v)}`),
      'backends:',
      ...r.backends.map((b) => `  ${line(b)}`),
    ];
    io.stdout.write(`${out.join('\n')}\n`);
    return 0;
  },
};
