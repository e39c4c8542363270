import type { Command } from '../command.js';
import { agentCommand } from './agent.js';
import { applyCommand } from './apply.js';
import { drainCommand } from './drain.js';
import { getServicesCommand, getVrrpCommand } from './get.js';
import { healthCommand } from './health.js';
import { ipvsList } from './ipvs-list.js';
import { ipvsReconcile } from './ipvs-reconcile.js';
import { statusCommand } from './status.js';
import { vrrpRunCommand } from './vrrp.js';

/** Every subcommand, in the order `fulcrum help` lists them. */
export const COMMANDS: Command[] = [
  agentCommand,
  getServicesCommand,
  getVrrpCommand,
  applyCommand,
  drainCommand,
  statusCommand,
  healthCommand,
  ipvsList,
  ipvsReconcile,
  vrrpRunCommand,
];
