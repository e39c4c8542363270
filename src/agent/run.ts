import { closeSync, mkdirSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { errorFields, FulcrumError } from '../errors.js';
import { EventBus } from '../events.js';
import { createIpvsDataplane } from '../ipvs/dataplane.js';
import { createRootLogger, type Logger } from '../log.js';
import { createMetricsRegistry, type Registry } from '../metrics.js';
import { defaultAgentSettings, type AgentSettings } from '../model/agent.js';
import { desiredStateOf, loadConfigFile, type DesiredState } from '../model/index.js';
import { createXdpDataplane } from '../xdp/dataplane.js';
import { HealthManager } from '../health/index.js';
import { VrrpManager } from '../vrrp/index.js';
import { buildApp } from '../api/app.js';
import { localAdminToken, TokenSet } from '../api/auth.js';
import { buildAgent, type Agent } from './agent.js';
import type { ReloadResult } from '../api/common.js';
import { sameValue } from '../util/json-value.js';
import type { DataplaneFactories } from './ports.js';
import { systemClock } from '../util/clock.js';
import { FileStateStore } from './store.js';
import { Webhooks, webhookTargets } from './webhooks.js';
import { ClusterMember } from './cluster.js';
import { BirdSocketClient } from '../bgp/bird-client.js';
import { BgpController } from '../bgp/controller.js';

export interface RunOptions {
  configPath?: string | undefined;
  cleanup?: boolean;
  /** Resolves when the process should stop (SIGTERM/SIGINT in production). */
  stopSignal: Promise<string>;
}

/**
 * `fulcrum agent`: the production wiring of the agent (real dataplanes, file or etcd store, system clock,
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

function factories(settings: AgentSettings, metrics?: Registry): DataplaneFactories {
  return {
    ipvs: (report) => createIpvsDataplane({ stateDir: settings.stateDir, drainTimeoutSeconds: settings.drainTimeoutSeconds, report }),
    xdp: (xdp, report) => createXdpDataplane({ settings: xdp, stateDir: settings.stateDir, pinDir: settings.xdp.pinDir, drainTimeoutSeconds: settings.drainTimeoutSeconds, report, ...(metrics ? { metrics } : {}) }),
  };
}

async function runLocked(settings: AgentSettings, seed: DesiredState | undefined, logger: Logger, options: RunOptions): Promise<number> {
  const events = new EventBus();
  const metrics = createMetricsRegistry();
  // agent.store kind etcd: the services are the cluster's, the other sections this file's.
  const cluster = settings.store.kind === 'etcd' && !options.cleanup ? await ClusterMember.open(settings.store, settings.stateDir, seed, logger) : undefined;
  const agent = buildAgent({
    settings,
    factories: factories(settings, metrics),
    store: cluster?.cache ?? new FileStateStore(settings.stateDir),
    cluster,
    clock: systemClock,
    logger,
    metrics,
    events,
    seed: cluster ? undefined : seed,
    // Health checks run in the agent; their transitions make it reconcile (see HealthPort).
    health: options.cleanup ? undefined : new HealthManager({ logger, events, metrics, stateFile: join(settings.stateDir, 'health-state.json') }),
    // VRRP instances of the desired state; a stop hands mastership over (priority 0), as keepalived does.
    vrrp: options.cleanup ? undefined : new VrrpManager({ logger, events, metrics, maintenanceFile: join(settings.stateDir, 'vrrp-maintenance.json') }),
    bgp: options.cleanup || !settings.bgp ? undefined : bgpController(settings.bgp, logger, metrics, events),
  });

  if (options.cleanup) {
    const removed = await agent.cleanup();
    logger.info({ dataplanes: removed, store: join(settings.stateDir, 'desired-state.json') }, 'cleanup done; the stored desired state is kept (delete the state directory to forget it)');
    return 0;
  }

  const notifyLog = logger.child({ component: 'notify' });
  const webhooks = new Webhooks({
    events, metrics, clock: systemClock, node: hostname(), targets: webhookTargets(settings.notify.webhooks),
    onFailure: (webhook, event, reason) => notifyLog.warn({ webhook, event: event.type, seq: event.seq, reason }, 'webhook delivery failed; the event is dropped'),
  });

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

  // SIGHUP (systemctl reload) re-reads the config file once the agent serves; Node would exit on it.
  let serving = false;
  const reload = options.configPath === undefined ? undefined : reloader(options.configPath, settings, agent, cluster, webhooks);
  const onHangup = (): void => {
    if (!reload || !serving) {
      logger.warn(reload ? 'SIGHUP before the agent started: ignored (the config file is being read now)' : 'SIGHUP: the agent runs without a config file (-c); nothing to reload');
      return;
    }
    reload({}).then(
      ({ change, restartNeeded }) => logger.info({ revision: change.revision, changed: change.changed, restartNeeded }, change.changed ? 'config file reloaded and applied' : 'config file reloaded: nothing to change'),
      (e: unknown) => logger.error({ err: errorFields(e) }, 'config file reload refused; the running state is kept'),
    );
  };
  process.on('SIGHUP', onHangup);
  try {
    return await serve();
  } finally {
    process.off('SIGHUP', onHangup);
    await webhooks.close();
  }

  async function serve(): Promise<number> {
    try {
      await agent.start();
    } catch (e) {
      await cluster?.close().catch(() => undefined);
      await agent.close().catch(() => undefined); // releases dataplane handles; kernel state stays
      throw e;
    }
    const app = await buildApp({ agent, events, metrics, tokens, settings: api, logger, https, reload });
    try {
      await app.listen({ host: api.host, port: api.port });
    } catch (e) {
      await cluster?.close().catch(() => undefined);
      await agent.close();
      const err = e as NodeJS.ErrnoException;
      throw new FulcrumError('INVALID_CONFIG', `agent.api: cannot listen on ${api.host}:${api.port}: ${err.code ?? err.message}`, { cause: e });
    }
    const address = app.server.address();
    const port = typeof address === 'object' && address ? address.port : api.port;
    const url = `${https ? 'https' : 'http'}://${api.host.includes(':') ? `[${api.host}]` : api.host}:${port}`;
    app.log.info({ url, port }, 'API listening');
    await cluster?.join(agent, url);
    serving = true;

    const signal = await options.stopSignal;
    logger.info({ signal }, 'stopping; kernel tables stay in place');
    // The agent first: a VRRP master hands its VIPs over while the API still serves the event
    // stream (its last transitions reach subscribers) and answers /readyz with 503. A cluster
    // member first stops its watch and revokes its lease (it is listed as gone at once).
    await cluster?.close().catch((e: unknown) => logger.warn({ err: errorFields(e) }, 'leaving the cluster failed; the lease expires by itself'));
    await agent.close();
    await app.close();
    return 0;
  }
}

/**
 * Re-reads the config file (SIGHUP, POST /v1/reload). A file that fails validation throws
 * INVALID_CONFIG naming every field, and nothing changes; its desired state goes through the agent
 * like any change. `agent.notify` is reloaded too (the webhooks, their secret files read again:
 * a key rotation needs no restart); the other `agent:` settings that differ from the running ones
 * are reported, not applied.
 */
function reloader(configPath: string, running: AgentSettings, agent: Agent, cluster: ClusterMember | undefined, webhooks: Webhooks): (options: { dryRun?: boolean }) => Promise<ReloadResult> {
  return async ({ dryRun = false }) => {
    const config = loadConfigFile(configPath);
    const next = config.agent ?? defaultAgentSettings();
    // Read before anything changes: a missing or empty secret file refuses the whole reload.
    const targets = webhookTargets(next.notify.webhooks);
    const restartNeeded = (Object.keys(next) as Array<keyof AgentSettings>).filter((k) => k !== 'notify' && !sameValue(next[k], running[k])).map((k) => `agent.${k}`);
    // In a cluster only the node's own sections are reloaded; the services are the cluster's.
    const change = cluster ? await cluster.reloadOwn(desiredStateOf(config), { dryRun }) : await agent.reseed(desiredStateOf(config), { dryRun });
    if (!dryRun) webhooks.update(targets);
    return { change, restartNeeded };
  };
}

function bgpController(bgp: NonNullable<AgentSettings['bgp']>, logger: Logger, metrics: ReturnType<typeof createMetricsRegistry>, events: EventBus): BgpController {
  const log = logger.child({ component: 'bgp' });
  return new BgpController({
    settings: bgp, bird: new BirdSocketClient(bgp.controlSocket), clock: systemClock, metrics, events,
    report: (n) => log[n.level](n.fields ?? {}, n.message),
  });
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
