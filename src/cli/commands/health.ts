import type { Command } from '../command.js';
import type { ServiceHealthStatus } from '../../health/index.js';
import { FulcrumError } from '../../errors.js';
import { call, clientFrom, CLIENT_USAGE, parseCommandArgs, printJson, table } from '../client.js';

/** The health of every checked backend, as a table (pure, for the command and its tests). */
export function formatHealth(services: ServiceHealthStatus[]): string {
  if (services.length === 0) return 'no service has health checks\n';
  const rows = services.flatMap((s) => s.backends.map((b) => [
    s.service,
    b.check === `${b.address}:${b.port}` || b.check === `[${b.address}]:${b.port}` ? b.check : `${b.address}:${b.port} (checks ${b.check})`,
    s.kind,
    b.checked ? b.state : `${b.state} (warming up)`,
    b.since,
    b.lastResult ? `${b.lastResult.reason} (${b.lastResult.latencyMs.toFixed(1)} ms)` : '-',
  ]));
  let out = table(['SERVICE', 'BACKEND', 'CHECK', 'STATE', 'SINCE', 'LAST RESULT'], rows);
  for (const s of services) {
    const q = s.quorum;
    if (!q) continue;
    const rule = `min ${q.min}${q.hysteresis ? ` +/- ${q.hysteresis}` : ''}`;
    out += q.held
      ? `${s.service}: quorum held (healthy weight ${q.healthyWeight}, ${rule})\n`
      : `${s.service}: QUORUM LOST (healthy weight ${q.healthyWeight}, ${rule})${q.sorryServerActive ? ': the sorry server serves' : ''}\n`;
  }
  return out;
}

export const healthCommand: Command = {
  path: ['health'],
  summary: 'health of the checked backends: state, since when, last result and its reason',
  usage: `health [SERVICE] ${CLIENT_USAGE}`,
  async run(argv, io) {
    const args = parseCommandArgs(argv, {}, [0, 1]);
    const status = (await call(clientFrom(args.values, io.env), 'GET', '/v1/status')).body as { health?: ServiceHealthStatus[] };
    let services = status.health ?? [];
    const name = args.positionals[0];
    if (name !== undefined) {
      services = services.filter((s) => s.service === name);
      if (services.length === 0) throw new FulcrumError('NOT_FOUND', `service ${name} has no health checks (or does not exist)`);
    }
    if (args.output === 'json') printJson(io, services);
    else io.stdout.write(formatHealth(services));
    return 0;
  },
};
