import { parseArgs } from 'node:util';
import type { Command } from '../command.js';
import { FulcrumError } from '../../errors.js';
import { loadConfigFile } from '../../model/index.js';
import { openIpvsClient } from '../../ipvs/client.js';
import { IpvsReconciler } from '../../ipvs/reconciler.js';
import { pino } from 'pino';
import { reportTo } from '../../log.js';

/**
 * `fulcrum ipvs reconcile --config FILE --state-dir DIR [--dry-run]`: one reconcile of the config's
 * IPVS services; prints the steps (the diff). Services Fulcrum does not own are left alone.
 */
export const ipvsReconcile: Command = {
  path: ['ipvs', 'reconcile'],
  summary: 'bring the kernel IPVS table to a config file once (prints the diff)',
  usage: 'ipvs reconcile --config FILE --state-dir DIR [--dry-run] [--json]',
  async run(argv, io) {
    let values;
    try {
      ({ values } = parseArgs({
        args: argv,
        options: { config: { type: 'string' }, 'state-dir': { type: 'string' }, 'dry-run': { type: 'boolean' }, json: { type: 'boolean' } },
        strict: true,
      }));
    } catch (e) {
      throw new FulcrumError('INVALID_REQUEST', (e as Error).message);
    }
    if (!values.config) throw new FulcrumError('INVALID_REQUEST', '--config FILE is required');
    if (!values['state-dir']) throw new FulcrumError('INVALID_REQUEST', '--state-dir DIR is required (where ownership is recorded)');
    const config = loadConfigFile(values.config);
    const services = config.services.filter((s) => s.dataplane === 'ipvs');
    const client = await openIpvsClient();
    // Notes (foreign services left alone) are logged to stderr; stdout carries the diff.
    const logger = pino({ name: 'fulcrum', level: process.env.FULCRUM_LOG_LEVEL ?? 'info' }, pino.destination(2));
    const reconciler = new IpvsReconciler({ client, stateDir: values['state-dir'], report: reportTo(logger) });
    try {
      const result = await reconciler.reconcile(services, { dryRun: values['dry-run'] ?? false });
      if (values.json) {
        io.stdout.write(JSON.stringify(result) + '\n');
        return 0;
      }
      for (const s of result.steps) io.stdout.write(`${s.description}\n`);
      for (const k of result.foreign) io.stdout.write(`  (not owned, left alone: ${k})\n`);
      io.stdout.write(`${result.steps.length} step(s) ${result.applied ? 'applied' : 'planned (dry run)'}\n`);
      return 0;
    } finally {
      await reconciler.close();
    }
  },
};
