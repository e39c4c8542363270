import { closeSync, mkdirSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { FulcrumError } from '../errors.js';
import { EventBus } from '../events.js';
import { createIpvsDataplane } from '../ipvs/dataplane.js';
import { createRootLogger, type Logger } from '../log.js';
import { createMetricsRegistry } from '../metrics.js';
import { defaultAgentSettings, type AgentSettings } from '../model/agent.js';
import { desiredStateOf, loadConfigFile, type DesiredState } from '../model/index.js';
import { createXdpDataplane } from '../xdp/dataplane.js';
import { HealthManager } from '../health/index.js';
import { VrrpManager } from '../vrrp/index.js';
import { buildApp } from '../api/app.js';
import { localAdminToken, TokenSet } from '../api/auth.js';
import { buildAgent } from './agent.js';
import { systemClock, type DataplaneFactories } from './ports.js';
import { FileStateStore } from './store.js';

export interface RunOptions {
  configPath?: string | undefined;
  cleanup?: boolean;
  /** Resolves when the process should stop (SIGTERM/SIGINT in production). */
  stopSignal: Promise<string>;
}

/**
 * `fulcrum agent`: the production wiring of the agent (real dataplanes, file store, system clock,
 * pino to stdout) and its API. Returns the exit code once stopped.
 */
export async function runAgent(options: RunOptions): Promise<number> {
  let settings: AgentSettings = defaultAgentSettings();
  let seed: DesiredState | undefined;
  if (options.configPath) {
    const config = loadConfigFile(options.configPath);
    settings = config.agent ?? settings;
    // The file's desired state seeds the store when it is new or changed (see docs/api.md). It is
    // a spec already (parsed with the file): it goes to the agent as it is, never parsed again.
    seed = desiredStateOf(config);
  }
  const logger = createRootLogger({ level: process.env.FULCRUM_LOG_LEVEL ?? settings.log.level });
  mkdirSync(settings.stateDir, { recursive: true, mode: 0o700 });
  const releaseLock = lockStateDir(settings.stateDir);
  try {
    return await runLocked(settings, seed, logger, options);
  } finally {
    releaseLock();
  }
}

function factories(settings: AgentSettings, logger: Logger): DataplaneFactories {
  return {
    ipvs: () => createIpvsDataplane({ stateDir: settings.stateDir, drainTimeoutSeconds: settings.drainTimeoutSeconds, logger: logger.child({ component: 'ipvs' }) }),
    xdp: (xdp) => createXdpDataplane({ settings: xdp, stateDir: settings.stateDir, pinDir: settings.xdp.pinDir, logger: logger.child({ component: 'xdp' }) }),
  };
}

async function runLocked(settings: AgentSettings, seed: DesiredState | undefined, logger: Logger, options: RunOptions): Promise<number> {
  const events = new EventBus();
  const metrics = createMetricsRegistry();
  const agent = buildAgent({
    settings,
    factories: factories(settings, logger),
    store: new FileStateStore(settings.stateDir),
    clock: systemClock,
    logger,
    metrics,
    events,
    seed,
    // Health checks run in the agent; their transitions make it reconcile (see HealthPort).
    health: options.cleanup ? undefined : new HealthManager({ logger, events, metrics, stateFile: join(settings.stateDir, 'health-state.json') }),
    // VRRP instances of the desired state; a stop hands mastership over (priority 0), as keepalived does.
    vrrp: options.cleanup ? undefined : new VrrpManager({ logger, events, metrics }),
  });

  if (options.cleanup) {
    const removed = await agent.cleanup();
    logger.info({ dataplanes: removed, store: join(settings.stateDir, 'desired-state.json') }, 'cleanup done; the stored desired state is kept (delete the state directory to forget it)');
    return 0;
  }

  const api = settings.api;
  let tokens: TokenSet;
  if (api.tokensFile) tokens = TokenSet.fromFile(api.tokensFile);
  else {
    const local = localAdminToken(settings.stateDir);
    tokens = local.tokens;
    logger.info({ tokenFile: local.path }, 'no api.tokensFile: one admin token for local use is in this file (mode 0600)');
  }
  const https = api.tls ? { cert: readPem(api.tls.cert, 'agent.api.tls.cert'), key: readPem(api.tls.key, 'agent.api.tls.key') } : undefined;
  if (api.insecure && !api.tls) logger.warn({ host: api.host }, 'the API serves plain HTTP on a non-loopback address (insecure: true)');

  try {
    await agent.start();
  } catch (e) {
    await agent.close().catch(() => undefined); // releases dataplane handles; kernel state stays
    throw e;
  }
  const app = await buildApp({ agent, events, metrics, tokens, settings: api, logger, https });
  try {
    await app.listen({ host: api.host, port: api.port });
  } catch (e) {
    await agent.close();
    const err = e as NodeJS.ErrnoException;
    throw new FulcrumError('INVALID_CONFIG', `agent.api: cannot listen on ${api.host}:${api.port}: ${err.code ?? err.message}`, { cause: e });
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : api.port;
  logger.info({ component: 'api', url: `${https ? 'https' : 'http'}://${api.host.includes(':') ? `[${api.host}]` : api.host}:${port}`, port }, 'API listening');

  const signal = await options.stopSignal;
  logger.info({ signal }, 'stopping; kernel tables stay in place');
  // The agent first: a VRRP master hands its VIPs over while the API still serves the event
  // stream (its last transitions reach subscribers) and answers /readyz with 503.
  await agent.close();
  await app.close();
  return 0;
}

function readPem(path: string, field: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new FulcrumError('INVALID_CONFIG', `${field}: cannot read ${path}: ${(e as Error).message}`, { cause: e });
  }
}

/**
 * One agent per state directory: a pid file, taken over when its owner is gone (kill -9 leaves
 * it behind).
 */
function lockStateDir(stateDir: string): () => void {
  const path = join(stateDir, 'agent.pid');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, 'wx', 0o600);
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      return () => {
        try { unlinkSync(path); } catch { /* gone */ }
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const pid = Number(readFileSync(path, 'utf8').trim());
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && alive(pid))
        throw new FulcrumError('CONFLICT', `another agent (pid ${pid}) uses the state directory ${stateDir}`);
      unlinkSync(path);
    }
  }
  throw new FulcrumError('CONFLICT', `cannot lock the state directory ${stateDir}`);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
