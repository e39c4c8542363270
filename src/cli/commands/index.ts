import type { Command } from '../command.js';
import { vrrpRunCommand } from './vrrp.js';

/** Every subcommand, in the order `fulcrum help` lists them. */
export const COMMANDS: Command[] = [vrrpRunCommand];
