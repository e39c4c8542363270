import { existsSync, readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ERROR_CATALOGUE, FulcrumError, type ErrorCode } from '../errors.js';
import type { CliIo } from './command.js';

/** The agent's API as the CLI sees it: server URL, bearer token, optional CA for TLS. */
export interface ApiClient {
  server: string;
  token: string | undefined;
  ca: Buffer | undefined;
  /** --timeout: how long a call may wait for its answer; undefined: the defaults of `call`. */
  timeoutMs?: number;
}

export const DEFAULT_SERVER = 'http://127.0.0.1:9180';
/** Where an agent without api.tokensFile keeps its local admin token. */
export const DEFAULT_TOKEN_FILE = '/var/lib/fulcrum/admin.token';

export const CLIENT_OPTIONS = {
  server: { type: 'string' },
  'token-file': { type: 'string' },
  ca: { type: 'string' },
  output: { type: 'string', short: 'o' },
  timeout: { type: 'string' },
} as const satisfies ParseArgsConfig['options'];

export const CLIENT_USAGE = '[--server URL] [--token-file FILE] [--ca FILE] [--timeout SECONDS] [-o table|json]';

/** Parses argv with the common client options plus `extra`; errors name the option. */
export function parseCommandArgs<O extends NonNullable<ParseArgsConfig['options']>>(argv: string[], extra: O, positionals: number | [number, number]) {
  const [min, max] = typeof positionals === 'number' ? [positionals, positionals] : positionals;
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: { ...CLIENT_OPTIONS, ...extra }, allowPositionals: true, strict: true });
  } catch (e) {
    throw new FulcrumError('INVALID_REQUEST', (e as Error).message);
  }
  if (parsed.positionals.length < min || parsed.positionals.length > max)
    throw new FulcrumError('INVALID_REQUEST', `expected ${min === max ? min : `${min} to ${max}`} argument(s), got ${parsed.positionals.length}: see --help`);
  const output = (parsed.values as { output?: string }).output ?? 'table';
  if (output !== 'table' && output !== 'json') throw new FulcrumError('INVALID_REQUEST', `-o: "${output}" is not table or json`);
  return { values: parsed.values as Record<string, string | boolean | undefined>, positionals: parsed.positionals, output: output as 'table' | 'json' };
}

/** --server / FULCRUM_SERVER; token from FULCRUM_TOKEN, --token-file, or the local admin token file. */
export function clientFrom(values: Record<string, string | boolean | undefined>, env: NodeJS.ProcessEnv): ApiClient {
  const server = (values.server as string | undefined) ?? env.FULCRUM_SERVER ?? DEFAULT_SERVER;
  if (!/^https?:\/\/[^/]+\/?$/.test(server)) throw new FulcrumError('INVALID_REQUEST', `--server: "${server}" is not http(s)://host:port`);
  let token = env.FULCRUM_TOKEN;
  const file = values['token-file'] as string | undefined;
  if (file !== undefined) token = readSecret(file, '--token-file');
  else if (token === undefined && existsSync(DEFAULT_TOKEN_FILE)) {
    try { token = readSecret(DEFAULT_TOKEN_FILE, 'token file'); } catch { /* not readable: go without */ }
  }
  const caPath = values.ca as string | undefined;
  const ca = caPath === undefined ? undefined : readFileSync(caPath);
  const timeout = values.timeout as string | undefined;
  if (timeout !== undefined && !/^\d+(\.\d+)?$/.test(timeout)) throw new FulcrumError('INVALID_REQUEST', `--timeout: "${timeout}" is not a number of seconds`);
  return { server: server.replace(/\/$/, ''), token, ca, ...(timeout !== undefined ? { timeoutMs: Number(timeout) * 1000 } : {}) };
}

function readSecret(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch (e) {
    throw new FulcrumError('INVALID_REQUEST', `${what}: cannot read ${path}: ${(e as Error).message}`);
  }
}

export interface ApiResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: unknown;
}

/** A read gives up after this long without an answer unless --timeout says otherwise. */
export const READ_TIMEOUT_MS = 60_000;

/**
 * One API call; an error answer becomes the FulcrumError it describes. A read (GET) gives up after
 * READ_TIMEOUT_MS. A change waits for its answer however long the agent takes to apply it (a
 * 10,000-service apply takes minutes): giving up would tell the operator it failed while the agent
 * goes on and applies it. TCP keepalive still notices an agent or host that is gone. --timeout
 * bounds both; a change that times out says it may still be applying.
 */
export function call(client: ApiClient, method: string, path: string, body?: unknown): Promise<ApiResponse> {
  const url = new URL(path, client.server + '/');
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  const headers: Record<string, string> = { accept: 'application/json' };
  if (client.token) headers.authorization = `Bearer ${client.token}`;
  if (payload) { headers['content-type'] = 'application/json'; headers['content-length'] = String(payload.length); }
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  const change = method !== 'GET';
  const timeoutMs = client.timeoutMs ?? (change ? 0 : READ_TIMEOUT_MS);
  return new Promise((resolve, reject) => {
    const req = send(url, { method, headers, ...(timeoutMs > 0 ? { timeout: timeoutMs } : {}), ...(client.ca ? { ca: client.ca } : {}) }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed: unknown = text;
        try { parsed = text ? JSON.parse(text) : undefined; } catch { /* not JSON (e.g. /metrics) */ }
        const status = res.statusCode ?? 0;
        if (status >= 400) {
          const b = (parsed ?? {}) as { code?: string; message?: string; errno?: number; details?: unknown };
          const code = (b.code && b.code in ERROR_CATALOGUE ? b.code : 'INTERNAL') as ErrorCode;
          reject(new FulcrumError(code, b.message ?? `HTTP ${status}`, { errno: b.errno, details: b.details }));
          return;
        }
        resolve({ status, headers: res.headers, body: parsed });
      });
    });
    req.on('socket', (s) => s.setKeepAlive(true, 10_000));
    req.on('timeout', () => req.destroy(new Error(change
      ? `no answer from ${client.server} within ${timeoutMs / 1000} s; the agent may still be applying the change: \`fulcrum status\` shows its revision`
      : `no answer from ${client.server} within ${timeoutMs / 1000} s`)));
    req.on('error', (e: NodeJS.ErrnoException) =>
      reject(new FulcrumError('INVALID_REQUEST', e.code === 'ECONNREFUSED' ? `cannot reach the agent at ${client.server} (is \`fulcrum agent\` running?)` : `${client.server}: ${e.message}`)));
    req.end(payload);
  });
}

/** Left-aligned columns separated by two spaces. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

export function printJson(io: CliIo, value: unknown): void {
  io.stdout.write(JSON.stringify(value, null, 2) + '\n');
}
