#!/usr/bin/env node
import { COMMANDS } from './commands/index.js';
import type { CliIo, Command } from './command.js';
import { isFulcrumError } from '../errors.js';

function findCommand(argv: string[]): { command: Command; rest: string[] } | undefined {
  let best: { command: Command; rest: string[] } | undefined;
  for (const command of COMMANDS) {
    const n = command.path.length;
    if (argv.length >= n && command.path.every((w, i) => argv[i] === w) && (!best || n > best.command.path.length))
      best = { command, rest: argv.slice(n) };
  }
  return best;
}

function help(io: CliIo): void {
  io.stdout.write('usage: fulcrum <command> [options]\n\ncommands:\n');
  for (const c of COMMANDS) io.stdout.write(`  ${c.path.join(' ').padEnd(22)} ${c.summary}\n`);
  io.stdout.write('\n`fulcrum <command> --help` for its options.\n');
}

export async function main(argv: string[], io: CliIo): Promise<number> {
  if (argv.length === 0 || argv[0] === 'help' || argv[0] === '--help' || argv[0] === '-h') {
    help(io);
    return argv.length === 0 ? 2 : 0;
  }
  const found = findCommand(argv);
  if (!found) {
    io.stderr.write(`fulcrum: unknown command "${argv.join(' ')}"; see fulcrum help\n`);
    return 2;
  }
  if (found.rest.includes('--help') || found.rest.includes('-h')) {
    io.stdout.write(`usage: fulcrum ${found.command.usage}\n`);
    return 0;
  }
  try {
    return await found.command.run(found.rest, io);
  } catch (e) {
    if (isFulcrumError(e)) io.stderr.write(`fulcrum: ${e.code}: ${e.message}\n`);
    else io.stderr.write(`fulcrum: ${(e as Error).message ?? String(e)}\n`);
    return 1;
  }
}

const io: CliIo = { stdout: process.stdout, stderr: process.stderr, env: process.env };
main(process.argv.slice(2), io).then(
  (code) => { process.exitCode = code; },
  (e) => { process.stderr.write(`fulcrum: ${String(e)}\n`); process.exitCode = 1; },
);
