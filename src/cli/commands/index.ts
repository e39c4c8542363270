import type { Command } from '../command.js';
import { ipvsList } from './ipvs-list.js';
import { ipvsReconcile } from './ipvs-reconcile.js';

/** Every subcommand, in the order `fulcrum help` lists them. */
export const COMMANDS: Command[] = [
  ipvsList,
  ipvsReconcile,
];
