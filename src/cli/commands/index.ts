import type { Command } from '../command.js';
import { agentCommand } from './agent.js';
import { applyCommand } from './apply.js';
import { clusterStatusCommand } from './cluster.js';
import { configCheckCommand } from './config.js';
import { drainCommand } from './drain.js';
import { explainCommand } from './explain.js';
import { getServicesCommand, getVrrpCommand } from './get.js';
import { healthCommand } from './health.js';
import { importKeepalivedCommand } from './import.js';
import { ipvsList } from './ipvs-list.js';
import { ipvsReconcile } from './ipvs-reconcile.js';
import { statusCommand } from './status.js';
import { vrrpMaintenanceCommand, vrrpRunCommand } from './vrrp.js';

/** Every subcommand, in the order `fulcrum help` lists them. */
export const COMMANDS: Command[] = [
  agentCommand,
  getServicesCommand,
  getVrrpCommand,
  applyCommand,
  drainCommand,
  statusCommand,
  explainCommand,
  clusterStatusCommand,
  healthCommand,
  ipvsList,
  ipvsReconcile,
  vrrpMaintenanceCommand,
  vrrpRunCommand,
  configCheckCommand,
  importKeepalivedCommand,
];
