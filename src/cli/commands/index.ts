import type { Command } from '../command.js';

/** Every subcommand, in the order `fulcrum help` lists them. */
export const COMMANDS: Command[] = [];
