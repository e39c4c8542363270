import type { ChangeResult } from '../../agent/change.js';
import type { Command, CliIo } from '../command.js';
import { FulcrumError } from '../../errors.js';
import { readYamlFile } from '../../model/index.js';
import { call, clientFrom, CLIENT_USAGE, parseCommandArgs, printJson } from '../client.js';

/** The readable diff of a change, then the kernel steps per dataplane. */
export function printChange(io: CliIo, r: ChangeResult, before: number | undefined): void {
  if (!r.changed) {
    io.stdout.write(`no changes (revision ${r.revision})\n`);
    return;
  }
  for (const d of r.diff) io.stdout.write(`${d.op} ${d.text.replace(/^\s+/, (s) => s)}\n`);
  for (const p of r.plan) {
    io.stdout.write(`\n${p.dataplane}: ${p.steps.length} kernel step(s)\n`);
    for (const s of p.steps) io.stdout.write(`  ${s.description}\n`);
  }
  io.stdout.write(r.dryRun ? `\ndry run: nothing applied (revision ${r.revision})\n` : `\napplied: revision ${before ?? r.revision - 1} -> ${r.revision}\n`);
}

export const applyCommand: Command = {
  path: ['apply'],
  summary: 'replace the desired state with a YAML file (prints the plan as a diff)',
  usage: `apply -f FILE [--dry-run] ${CLIENT_USAGE}`,
  async run(argv, io) {
    const args = parseCommandArgs(argv, { file: { type: 'string', short: 'f' }, 'dry-run': { type: 'boolean' } }, 0);
    const file = args.values.file as string | undefined;
    if (!file) throw new FulcrumError('INVALID_REQUEST', '-f FILE is required');
    const doc = readYamlFile(file);
    if (doc !== null && doc !== undefined && (typeof doc !== 'object' || Array.isArray(doc)))
      throw new FulcrumError('INVALID_CONFIG', `${file}: expected a mapping with services (and optionally xdp, vrrp)`);
    // A config file for `fulcrum agent` may be applied too; its agent settings are not desired state.
    const { agent: _settings, ...state } = (doc ?? {}) as Record<string, unknown>;
    const client = clientFrom(args.values, io.env);
    const dry = !!args.values['dry-run'];
    const res = await call(client, 'PUT', `/v1/state${dry ? '?dryRun=true' : ''}`, state);
    const r = res.body as ChangeResult;
    if (args.output === 'json') printJson(io, r);
    else printChange(io, r, undefined);
    return 0;
  },
};
