import type { Command } from '../command.js';
import { formatEndpoint, serviceKey, type Service } from '../../model/index.js';
import type { VrrpInstance } from '../../model/vrrp.js';
import { call, clientFrom, CLIENT_USAGE, parseCommandArgs, printJson, table } from '../client.js';

export const getServicesCommand: Command = {
  path: ['get', 'services'],
  summary: 'list the services of the desired state (or one, by name)',
  usage: `get services [NAME] ${CLIENT_USAGE}`,
  async run(argv, io) {
    const args = parseCommandArgs(argv, {}, [0, 1]);
    const client = clientFrom(args.values, io.env);
    const name = args.positionals[0];
    const services: Service[] = name
      ? [(await call(client, 'GET', `/v1/services/${encodeURIComponent(name)}`)).body as Service]
      : ((await call(client, 'GET', '/v1/services')).body as { services: Service[] }).services;
    if (args.output === 'json') {
      printJson(io, name ? services[0] : services);
      return 0;
    }
    if (services.length === 0) {
      io.stdout.write('no services\n');
      return 0;
    }
    io.stdout.write(table(
      ['NAME', 'DATAPLANE', 'SERVICE', 'SCHEDULER', 'FORWARDING', 'BACKENDS'],
      services.map((s) => [
        s.name, s.dataplane, serviceKey(s), s.scheduler, s.forwarding,
        s.backends.length === 0 ? '-' : s.backends.map((b) => `${formatEndpoint(b.address, b.port)}*${b.weight}`).join(','),
      ]),
    ));
    return 0;
  },
};

interface VrrpListItem {
  spec: VrrpInstance;
  runtime?: { state: string; priority: number; masterAddress?: string; fault?: string } | undefined;
}

export const getVrrpCommand: Command = {
  path: ['get', 'vrrp'],
  summary: 'list the VRRP instances of the desired state with their state on this node',
  usage: `get vrrp ${CLIENT_USAGE}`,
  async run(argv, io) {
    const args = parseCommandArgs(argv, {}, 0);
    const { instances } = (await call(clientFrom(args.values, io.env), 'GET', '/v1/vrrp')).body as { instances: VrrpListItem[] };
    if (args.output === 'json') {
      printJson(io, instances);
      return 0;
    }
    if (instances.length === 0) {
      io.stdout.write('no vrrp instances\n');
      return 0;
    }
    io.stdout.write(table(
      ['NAME', 'INTERFACE', 'VRID', 'VERSION', 'PRIORITY', 'PREEMPT', 'VIPS', 'STATE', 'MASTER'],
      instances.map(({ spec: i, runtime: r }) => [
        i.name, i.interface, String(i.vrid), `v${i.version}`, String(i.priority), i.preempt ? 'yes' : 'no',
        i.vips.map((v) => `${v.address}/${v.prefix}`).join(','),
        r ? (r.fault ? `fault (${r.fault})` : r.state) : 'not running', r?.masterAddress ?? '-',
      ]),
    ));
    return 0;
  },
};
