import type { Command } from '../command.js';
import { loadConfigFile } from '../../model/index.js';
import { createRootLogger } from '../../log.js';
import { EventBus } from '../../events.js';
import { createMetricsRegistry } from '../../metrics.js';
import { VrrpManager } from '../../vrrp/index.js';
import { renameSync, writeFileSync } from 'node:fs';
import { FulcrumError } from '../../errors.js';
import type { VrrpMaintenanceResult } from '../../agent/ports.js';
import { call, clientFrom, CLIENT_USAGE, parseCommandArgs, printJson, table } from '../client.js';

/**
 * `fulcrum vrrp run --config FILE`: VRRP alone, without the agent (interop tests run it inside a
 * netns with `ip netns exec`). Reads the `vrrp:` section of a config file; SIGTERM/SIGINT stop it
 * cleanly (priority-0 advert from a master, VIPs removed). `--status-file` receives the status
 * JSON after every transition (and every 200 ms when it changed).
 */
export const vrrpRunCommand: Command = {
  path: ['vrrp', 'run'],
  summary: 'run the VRRP instances of a config file (standalone, foreground)',
  usage: 'vrrp run --config FILE [--status-file FILE]',
  async run(argv, io) {
    let config: string | undefined;
    let statusFile: string | undefined;
    for (let i = 0; i < argv.length; i++) {
      const a = argv[i];
      if (a === '--config') config = argv[++i];
      else if (a === '--status-file') statusFile = argv[++i];
      else throw new FulcrumError('INVALID_REQUEST', `unknown option ${a}; usage: fulcrum ${this.usage}`);
    }
    if (!config) throw new FulcrumError('INVALID_REQUEST', `--config is required; usage: fulcrum ${this.usage}`);
    const file = loadConfigFile(config);
    if (file.vrrp.length === 0) throw new FulcrumError('INVALID_CONFIG', `${config}: no vrrp instances`);
    const logger = createRootLogger();
    const events = new EventBus();
    const manager = new VrrpManager({ logger, events, metrics: createMetricsRegistry({ defaultMetrics: false }) });
    let written = '';
    const writeStatus = () => {
      const text = `${JSON.stringify(manager.status())}\n`;
      if (!statusFile || text === written) return;
      // Replaced by rename (readers never see half a file) but not fsync'ed: it is a view of
      // live state, and an fsync here would stall the event loop on the failover path.
      const tmp = `${statusFile}.${process.pid}.tmp`;
      writeFileSync(tmp, text, { mode: 0o644 });
      renameSync(tmp, statusFile);
      written = text;
    };
    events.subscribe((e) => { if (e.type === 'vrrp-transition') setImmediate(writeStatus); });
    // The master's address and the tracked priority change without a transition: refresh too.
    const refresh = statusFile ? setInterval(writeStatus, 200) : undefined;
    await manager.update(file.vrrp);
    writeStatus();
    io.stdout.write(`vrrp: running ${file.vrrp.map((i) => i.name).join(', ')}\n`);
    await new Promise<void>((resolve) => {
      const stop = () => resolve();
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
    });
    clearInterval(refresh);
    await manager.close();
    writeStatus();
    return 0;
  },
};

/** `fulcrum vrrp maintenance on|off`: the planned hand-over of this node's VRRP instances. */
export const vrrpMaintenanceCommand: Command = {
  path: ['vrrp', 'maintenance'],
  summary: "put this node's VRRP instances into maintenance (hand the VIPs over, stay backup) or end it",
  usage: `vrrp maintenance on|off [--dry-run] ${CLIENT_USAGE}`,
  async run(argv, io) {
    const args = parseCommandArgs(argv, { 'dry-run': { type: 'boolean' } }, 1);
    const [onOff] = args.positionals as [string];
    if (onOff !== 'on' && onOff !== 'off') throw new FulcrumError('INVALID_REQUEST', `expected on or off, got "${onOff}"; usage: fulcrum ${this.usage}`);
    const dryRun = !!args.values['dry-run'];
    const res = (await call(clientFrom(args.values, io.env), 'POST', '/v1/vrrp/maintenance', { enabled: onOff === 'on', dryRun })).body as VrrpMaintenanceResult;
    if (args.output === 'json') {
      printJson(io, res);
      return 0;
    }
    io.stdout.write(`${dryRun ? 'dry run: ' : ''}maintenance ${onOff}${res.changed ? '' : ' (unchanged)'}\n`);
    io.stdout.write(table(['VRRP', 'STATE', 'MAINTENANCE'], res.instances.map((i) => [i.name, i.state, i.maintenance ? 'yes' : 'no'])));
    return 0;
  },
};
