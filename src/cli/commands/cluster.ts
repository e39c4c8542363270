import type { Command } from '../command.js';
import type { ClusterStatus } from '../../cluster/etcd-store.js';
import { call, clientFrom, CLIENT_USAGE, parseCommandArgs, printJson, table } from '../client.js';

export const clusterStatusCommand: Command = {
  path: ['cluster', 'status'],
  summary: "every node of the agent's cluster: its revision, current, behind, failed or gone",
  usage: `cluster status ${CLIENT_USAGE}`,
  async run(argv, io) {
    const args = parseCommandArgs(argv, {}, 0);
    const s = (await call(clientFrom(args.values, io.env), 'GET', '/v1/cluster')).body as ClusterStatus;
    if (args.output === 'json') {
      printJson(io, s);
      return 0;
    }
    io.stdout.write(`revision: ${s.revision}\n\n`);
    io.stdout.write(table(
      ['NODE', 'STATE', 'REVISION', 'ADDRESS', 'DATAPLANES', 'LAST RECONCILE'],
      s.nodes.map((n) => {
        const r = n.record;
        const last = r?.lastReconcile;
        return [
          n.id, n.health, r ? String(r.appliedRevision) : '-', r?.address ?? n.member?.address ?? '-', r ? r.dataplanes.join(',') || '-' : '-',
          last ? `${last.result} at revision ${last.revision} (${last.at})${last.message ? `: ${last.message}` : ''}` : '-',
        ];
      }),
    ));
    return 0;
  },
};
