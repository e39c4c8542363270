import { parseArgs } from 'node:util';
import type { Command } from '../command.js';
import { FulcrumError, isFulcrumError } from '../../errors.js';
import { loadConfigFile } from '../../model/index.js';
import { TokenSet } from '../../api/auth.js';

/**
 * `fulcrum config check -f FILE` (like `keepalived -t`): the agent's own parse of its config file
 * (loadConfigFile, the path `fulcrum agent --config` takes) plus the tokens file it names, and
 * nothing else: no root, no kernel, no network, no state directory. Every problem goes to stderr
 * as `FILE: field.path: message`, one per line; exit 1 on any, else one OK line on stdout and 0.
 * Ansible's `template: validate:` runs it on the rendered file before it replaces the real one.
 */
export const configCheckCommand: Command = {
  path: ['config', 'check'],
  summary: 'validate an agent config file (no side effects)',
  usage: 'config check -f FILE',
  async run(argv, io) {
    let values: { file?: string };
    try {
      ({ values } = parseArgs({ args: argv, options: { file: { type: 'string', short: 'f' } }, strict: true }));
    } catch (e) {
      throw new FulcrumError('INVALID_REQUEST', `${(e as Error).message}; usage: fulcrum ${this.usage}`);
    }
    const file = values.file;
    if (!file) throw new FulcrumError('INVALID_REQUEST', `-f FILE is required; usage: fulcrum ${this.usage}`);
    const problems: string[] = [];
    // loadConfigFile's message is "FILE: invalid config:\n<one line per issue, with its path>" for
    // schema issues (details holds them) and one line for an unreadable file or a YAML error.
    const lines = (e: FulcrumError, prefix: string) =>
      Array.isArray(e.details) ? e.message.split('\n').slice(1).map((l) => `${prefix}${l}`) : [e.message];
    let config;
    try {
      config = loadConfigFile(file);
    } catch (e) {
      if (!isFulcrumError(e)) throw e;
      problems.push(...lines(e, `${file}: `));
    }
    const tokensFile = config?.agent?.api.tokensFile;
    if (tokensFile) {
      try {
        TokenSet.fromFile(tokensFile);
      } catch (e) {
        if (!isFulcrumError(e)) throw e;
        // "tokens file PATH:\n<issues>" or "tokens file PATH: <read or YAML error>"
        const [head, ...rest] = e.message.split('\n');
        if (rest.length === 0) problems.push(`${file}: agent.api.tokensFile: ${head}`);
        else for (const l of rest) problems.push(`${file}: agent.api.tokensFile: ${head} ${l}`);
      }
    }
    if (problems.length > 0 || !config) {
      for (const p of problems) io.stderr.write(`${p}\n`);
      io.stderr.write(`fulcrum: config check: ${file}: ${problems.length} error${problems.length === 1 ? '' : 's'}\n`);
      return 1;
    }
    const plural = (n: number, what: string) => `${n} ${what}${n === 1 ? '' : 's'}`;
    const api = config.agent?.api;
    const parts = [
      plural(config.services.length, 'service'),
      plural(config.vrrp.length, 'VRRP instance'),
      config.xdp ? `xdp on ${config.xdp.interfaces.map((i) => i.name).join(',') || 'no interface'}` : 'no xdp section',
      api ? `API ${api.host}:${api.port}` : 'API defaults',
      `state dir ${config.agent?.stateDir ?? 'default'}`,
    ];
    io.stdout.write(`${file}: OK (${parts.join(', ')})\n`);
    return 0;
  },
};
