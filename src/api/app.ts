import fastify, { LogController, type FastifyError, type FastifyInstance, type FastifyRequest } from 'fastify';
import rateLimit from '@fastify/rate-limit';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import { Counter, Histogram } from 'prom-client';
import { parse as parseYaml } from 'yaml';
import { FulcrumError, isFulcrumError } from '../errors.js';
import type { Role } from './auth.js';
import type { ApiDeps } from './common.js';
import { toOpenApi, zodValidatorCompiler } from './zod.js';
import { backendsPlugin } from './routes/backends.js';
import { drainPlugin } from './routes/drain.js';
import { eventsPlugin } from './routes/events.js';
import { servicesPlugin } from './routes/services.js';
import { statePlugin } from './routes/state.js';
import { statusPlugin } from './routes/status.js';
import { vrrpPlugin } from './routes/vrrp.js';
import { reloadPlugin } from './routes/reload.js';
import { clusterPlugin } from './routes/cluster.js';
import { isUiPath, uiPlugin } from './ui.js';
import { explainPlugin } from './routes/explain.js';

export type { ApiDeps } from './common.js';

/** Paths anyone may read: liveness, readiness, the API description, the dashboard's static files. */
const PUBLIC = (url: string) => url === '/healthz' || url === '/readyz' || url === '/openapi.json' || url === '/docs' || url.startsWith('/docs/') || isUiPath(url);

/**
 * The REST API as a fastify instance, not listening (the caller calls `listen`, tests use
 * `inject`). One plugin per resource; zod validates every input and describes it in OpenAPI.
 */
export async function buildApp(deps: ApiDeps): Promise<FastifyInstance> {
  const { settings, tokens } = deps;
  const app = fastify({
    loggerInstance: deps.logger.child({ component: 'api' }),
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: settings.bodyLimit,
    ...(deps.https ? { https: deps.https } : {}),
    // Connections of SSE clients and keep-alive clients would otherwise hold close() open.
    forceCloseConnections: true,
    return503OnClosing: true,
  }) as unknown as FastifyInstance;

  app.setValidatorCompiler(zodValidatorCompiler);
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));
  app.decorateRequest('principal', undefined);
  app.addContentTypeParser(['application/yaml', 'application/x-yaml', 'text/yaml'], { parseAs: 'string' }, (_req, body, done) => {
    try {
      done(null, parseYaml(body as string));
    } catch (e) {
      done(new FulcrumError('INVALID_REQUEST', `body is not valid YAML: ${(e as Error).message}`), undefined);
    }
  });

  // ---- errors: one catalogue, never a stack trace ----------------------------------------
  app.setErrorHandler((err: FastifyError | FulcrumError, req, reply) => {
    let e: FulcrumError;
    if (isFulcrumError(err)) e = err;
    else if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') e = new FulcrumError('PAYLOAD_TOO_LARGE', `the body exceeds this agent's limit of ${settings.bodyLimit} bytes: raise agent.api.bodyLimit in its config file (up to ${64 << 20} bytes) and reload it`);
    else if (err.statusCode === 429) e = new FulcrumError('RATE_LIMITED', err.message);
    else if (err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500) {
      const why = err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE' ? 'the body must be JSON (application/json) or YAML (application/yaml)' : err.message;
      e = new FulcrumError('INVALID_REQUEST', why);
    } else {
      req.log.error({ err, url: req.url, method: req.method }, 'internal error');
      e = new FulcrumError('INTERNAL', `internal error (request ${req.id}; see the agent log)`);
    }
    if (e.code === 'UNAUTHORIZED') reply.header('www-authenticate', 'Bearer realm="fulcrum"');
    if (e.status >= 500) req.log.warn({ code: e.code, err: e.message, url: req.url }, 'request failed');
    return reply.code(e.status).send(e.toJSON());
  });
  app.setNotFoundHandler((req, reply) => {
    const e = new FulcrumError('NOT_FOUND', `no route ${req.method} ${req.url.split('?')[0]}`);
    return reply.code(e.status).send(e.toJSON());
  });

  // ---- metrics --------------------------------------------------------------------------
  const registers = [deps.metrics];
  const requests = new Counter({ name: 'fulcrum_api_requests_total', help: 'API requests by method, route and status', labelNames: ['method', 'route', 'status'], registers });
  const latency = new Histogram({ name: 'fulcrum_api_request_duration_seconds', help: 'API request duration', labelNames: ['method', 'route'], buckets: [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5], registers });
  app.addHook('onResponse', async (req, reply) => {
    const route = req.routeOptions.url ?? 'unmatched';
    requests.inc({ method: req.method, route, status: String(reply.statusCode) });
    latency.observe({ method: req.method, route }, reply.elapsedTime / 1000);
    req.log.debug({ method: req.method, url: req.url, status: reply.statusCode, ms: reply.elapsedTime, who: req.principal?.name }, 'request');
  });

  // ---- authentication and roles ---------------------------------------------------------
  app.addHook('onRequest', async (req: FastifyRequest) => {
    const url = req.routeOptions.url ?? req.url.split('?')[0]!;
    if (PUBLIC(url)) return;
    const needed: Role = req.method === 'GET' || req.method === 'HEAD' ? 'read' : 'admin';
    const header = req.headers.authorization;
    if (header === undefined) {
      if (needed === 'read' && settings.anonymousRead) return;
      throw new FulcrumError('UNAUTHORIZED', 'missing bearer token (Authorization: Bearer <token>)');
    }
    const m = header.match(/^Bearer[ ]+([^\s]+)\s*$/i);
    const principal = m ? tokens.verify(m[1]!) : undefined;
    if (!principal) throw new FulcrumError('UNAUTHORIZED', 'unknown or malformed bearer token');
    if (needed === 'admin' && principal.role !== 'admin')
      throw new FulcrumError('FORBIDDEN', `token ${principal.name} has role ${principal.role}; changes need admin`);
    req.principal = principal;
  });

  if (settings.rateLimit !== false) {
    const limit = settings.rateLimit;
    await app.register(rateLimit, {
      global: true,
      max: limit.max,
      timeWindow: limit.windowSeconds * 1000,
      errorResponseBuilder: (_req, ctx) =>
        new FulcrumError('RATE_LIMITED', `more than ${ctx.max} requests in ${limit.windowSeconds} s; retry in ${ctx.after}`),
    });
  }

  // ---- OpenAPI --------------------------------------------------------------------------
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: 'Fulcrum agent API', version: '1', description: 'Desired state of one load-balancer node. See docs/api.md.' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
    transform: toOpenApi as never,
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  for (const plugin of [servicesPlugin, backendsPlugin, drainPlugin, statePlugin, statusPlugin, eventsPlugin, vrrpPlugin, reloadPlugin, clusterPlugin, explainPlugin, uiPlugin]) await app.register(plugin, deps);
  return app;
}
