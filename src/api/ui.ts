import type { FastifyPluginAsync, FastifyReply } from 'fastify';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FulcrumError } from '../errors.js';
import type { ApiDeps } from './common.js';

/**
 * The dashboard (`/ui/`, docs/dashboard.md): static files kept in the repository's `src/ui/`,
 * served as they are (no build step; like the BPF object, found from dist/src/... by a path relative
 * to this module). The files carry no data and no token: the page asks for a token, keeps it in
 * sessionStorage and reads the API with it, so the files themselves are public.
 */
export const UI_DIR = fileURLToPath(new URL('../../../src/ui/', import.meta.url));

const FILES: Record<string, string> = {
  'index.html': 'text/html; charset=utf-8',
  'app.js': 'text/javascript; charset=utf-8',
  'style.css': 'text/css; charset=utf-8',
  'favicon.svg': 'image/svg+xml',
};

/**
 * Only the agent's own origin, no inline script or style, no framing, and forms go nowhere (the
 * token form is handled by the script; were it ever submitted, the token would land in a URL).
 */
export const UI_CSP = [
  "default-src 'self'", "script-src 'self'", "style-src 'self'", "img-src 'self'", "connect-src 'self'",
  "font-src 'none'", "object-src 'none'", "base-uri 'none'", "form-action 'none'", "frame-ancestors 'none'",
].join('; ');

/** Paths of the dashboard's files: public, like /docs/ (the data they show needs a token). */
export const isUiPath = (url: string): boolean => url === '/ui' || url.startsWith('/ui/');

export const uiPlugin: FastifyPluginAsync<ApiDeps> = async (app) => {
  const files = new Map<string, Buffer>();
  let missing: string | undefined;
  for (const name of Object.keys(FILES)) {
    try {
      files.set(name, readFileSync(join(UI_DIR, name)));
    } catch (e) {
      missing ??= `${join(UI_DIR, name)}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`;
    }
  }

  const send = (reply: FastifyReply, name: string) => {
    const body = files.get(name);
    if (!body) throw new FulcrumError('NOT_FOUND', `the dashboard's files are missing (${missing}); they ship in src/ui/ of the repository`);
    return reply
      .header('content-type', FILES[name]!)
      .header('content-security-policy', UI_CSP)
      .header('x-content-type-options', 'nosniff')
      .header('referrer-policy', 'no-referrer')
      .header('x-frame-options', 'DENY')
      .header('cache-control', 'no-cache')
      .send(body);
  };

  app.get('/ui', { schema: { hide: true } }, async (_req, reply) => reply.redirect('/ui/'));
  app.get('/ui/', { schema: { hide: true } }, async (_req, reply) => send(reply, 'index.html'));
  for (const name of Object.keys(FILES).filter((n) => n !== 'index.html'))
    app.get(`/ui/${name}`, { schema: { hide: true } }, async (_req, reply) => send(reply, name));
};
