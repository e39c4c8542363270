import type { Command } from '../command.js';
import type { AgentStatus } from '../../agent/status.js';
import type { VrrpInstanceStatus } from '../../vrrp/index.js';
import type { SyncStatus } from '../../ipvs/sync.js';
import type { FlowSyncStatus } from '../../xdp/flowsync/service.js';
import type { BgpStatus } from '../../bgp/controller.js';
import { formatBgpStatus } from './bgp-status.js';
import { call, clientFrom, CLIENT_USAGE, parseCommandArgs, printJson, table } from '../client.js';

export const statusCommand: Command = {
  path: ['status'],
  summary: "the agent's dataplanes, revision and last reconcile",
  usage: `status ${CLIENT_USAGE}`,
  async run(argv, io) {
    const args = parseCommandArgs(argv, {}, 0);
    const s = (await call(clientFrom(args.values, io.env), 'GET', '/v1/status')).body as AgentStatus;
    if (args.output === 'json') {
      printJson(io, s);
      return 0;
    }
    io.stdout.write(`revision:  ${s.revision}${s.updatedAt ? ` (changed ${s.updatedAt})` : ''}\n`);
    io.stdout.write(`services:  ${s.services}\n`);
    io.stdout.write(`ready:     ${s.ready ? 'yes' : 'no'}\n`);
    const r = s.lastReconcile;
    io.stdout.write(`reconcile: ${r ? `${r.result} at ${r.time} (${r.trigger}, ${r.steps} step(s), ${r.durationMs} ms)${r.error ? `: ${r.error}` : ''}` : 'not yet'}; every ${s.reconcileIntervalSeconds} s\n\n`);
    io.stdout.write(table(['DATAPLANE', 'AVAILABLE', 'REASON'], s.dataplanes.map((d) => [d.name, d.available ? 'yes' : 'no', d.reason ?? ''])));
    const sync = (s.dataplanes.find((d) => d.name === 'ipvs')?.status as { sync?: SyncStatus } | undefined)?.sync;
    if (sync && sync.daemons.length > 0) {
      io.stdout.write('\n');
      io.stdout.write(table(
        ['SYNC DAEMON', 'INTERFACE', 'SYNC ID', 'GROUP', 'PORT', 'OWNER'],
        sync.daemons.map((d) => [d.state, d.interface, String(d.syncId), d.group ?? '-', d.port === undefined ? '-' : String(d.port), d.owned ? 'fulcrum' : 'other']),
      ));
    }
    const flows = (s.dataplanes.find((d) => d.name === 'xdp')?.status as { sync?: FlowSyncStatus } | undefined)?.sync;
    if (flows) {
      const drops = Object.entries(flows.dropped).map(([k, v]) => `${k}=${v}`).join(',') || 'none';
      io.stdout.write(`\nxdp flow sync ${flows.address}:${flows.port}: export ${flows.export ? 'on' : 'off'}, ring exported ${flows.ring.exported} lost ${flows.ring.lost}, dropped ${drops}\n`);
      io.stdout.write(table(
        ['FLOW SYNC PEER', 'SENT', 'RECEIVED', 'KEPT LOCAL', 'SEND ERRORS', 'LAG MS', 'SNAPSHOT', 'LAST RECEIVED'],
        flows.peers.map((p) => [p.address, String(p.sentFlows), String(p.receivedFlows), String(p.keptLocal), String(p.sendErrors), p.lagMs === undefined ? '-' : String(p.lagMs),
          `${p.snapshot} (${p.snapshotFlows} flows)`, p.lastReceivedAt ?? '-']),
      ));
    }
    const vrrp = (s.vrrp ?? []) as VrrpInstanceStatus[];
    if (vrrp.length > 0) {
      io.stdout.write('\n');
      io.stdout.write(table(
        ['VRRP', 'INTERFACE', 'VRID', 'STATE', 'PRIORITY', 'MASTER', 'VIPS', 'LAST CHANGE'],
        vrrp.map((v) => [
          v.name, v.interface, String(v.vrid), v.maintenance ? `${v.state} (maintenance)` : v.state,
          v.priority === v.configuredPriority ? String(v.priority) : `${v.priority} (configured ${v.configuredPriority})`,
          v.masterAddress ?? '-', v.vips.join(','),
          v.fault ? `fault: ${v.fault}` : v.lastTransition ? `${v.lastTransition.time} ${v.lastTransition.from} -> ${v.lastTransition.to}: ${v.lastTransition.reason}` : '-',
        ]),
      ));
    }
    if (s.bgp) io.stdout.write(`\n${formatBgpStatus(s.bgp as BgpStatus)}`);
    return 0;
  },
};
