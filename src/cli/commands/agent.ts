import { parseArgs } from 'node:util';
import type { Command } from '../command.js';
import { FulcrumError } from '../../errors.js';
import { runAgent } from '../../agent/run.js';

export const agentCommand: Command = {
  path: ['agent'],
  summary: 'run the agent: keep the kernel at the desired state, serve the API',
  usage: 'agent [--config FILE] [--cleanup]',
  async run(argv) {
    let values: { config?: string; cleanup?: boolean };
    try {
      ({ values } = parseArgs({ args: argv, options: { config: { type: 'string', short: 'c' }, cleanup: { type: 'boolean' } }, strict: true }));
    } catch (e) {
      throw new FulcrumError('INVALID_REQUEST', (e as Error).message);
    }
    // SIGTERM/SIGINT stop the agent gracefully; the kernel keeps its tables.
    const stopSignal = new Promise<string>((resolve) => {
      process.once('SIGTERM', () => resolve('SIGTERM'));
      process.once('SIGINT', () => resolve('SIGINT'));
    });
    return runAgent({ configPath: values.config, cleanup: !!values.cleanup, stopSignal });
  },
};
