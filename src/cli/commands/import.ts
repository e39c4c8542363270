import { parseArgs } from 'node:util';
import { dirname, resolve } from 'node:path';
import type { Command } from '../command.js';
import { FulcrumError } from '../../errors.js';
import { formatReportLine, importKeepalived, renderYaml } from '../../import/keepalived/index.js';

/**
 * `fulcrum import keepalived FILE [-o yaml|json]`: a keepalived.conf (and its includes) as a
 * Fulcrum config file on stdout, for the operator to review; nothing runs. Every keyword not
 * translated, or translated with a different meaning, goes to stderr as `FILE:LINE: ...` (and, in
 * YAML, into the header). Exit 0 with the translation, 1 when the input cannot be parsed.
 */
export const importKeepalivedCommand: Command = {
  path: ['import', 'keepalived'],
  summary: 'translate a keepalived.conf into a Fulcrum config (stdout)',
  usage: 'import keepalived FILE [-o yaml|json]',
  async run(argv, io) {
    let values: { output?: string }, positionals: string[];
    try {
      ({ values, positionals } = parseArgs({ args: argv, options: { output: { type: 'string', short: 'o' } }, allowPositionals: true, strict: true }));
    } catch (e) {
      throw new FulcrumError('INVALID_REQUEST', `${(e as Error).message}; usage: fulcrum ${this.usage}`);
    }
    const format = values.output ?? 'yaml';
    if (format !== 'yaml' && format !== 'json') throw new FulcrumError('INVALID_REQUEST', `-o must be yaml or json; usage: fulcrum ${this.usage}`);
    if (positionals.length !== 1) throw new FulcrumError('INVALID_REQUEST', `one FILE is required; usage: fulcrum ${this.usage}`);
    const file = positionals[0]!;
    const imp = importKeepalived(file);
    const base = dirname(resolve(file));
    for (const l of imp.report) io.stderr.write(`${formatReportLine(l, base)}\n`);
    const skipped = imp.report.filter((l) => l.kind === 'not translated').length;
    io.stderr.write(`fulcrum: import keepalived: ${imp.config.services.length} services, ${imp.config.vrrp.length} VRRP instances; ${skipped} not translated, ${imp.report.length - skipped} notes\n`);
    io.stdout.write(format === 'json' ? `${JSON.stringify(imp.config, null, 2)}\n` : renderYaml(imp, base));
    return 0;
  },
};
