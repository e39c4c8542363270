import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { fileURLToPath } from 'node:url';
import { run } from './netns.js';

/**
 * One HTTP request from inside a network namespace (an agent there listens on the netns's own
 * loopback, which the test process cannot reach). `nsHttp()` runs this file under
 * `nsenter --net`; as a script it takes one JSON request as argv[2] and prints one JSON answer.
 * With `sseEvents: N` it reads a text/event-stream until N events arrived (or the timeout) and
 * returns them parsed (or until one matches `sseUntil`).
 */

export interface NsRequest {
  url: string;
  method?: string;
  headers?: Record<string, string>;
  body?: string;
  /** PEM file of the CA that signed the server's certificate. */
  ca?: string;
  sseEvents?: number;
  /** With sseEvents: read until an event whose data matches this regular expression. */
  sseUntil?: string;
  timeoutMs?: number;
}

export interface SseEvent { id?: string; event?: string; data?: string }

export interface NsAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  events?: SseEvent[];
  error?: string;
}

const SELF = fileURLToPath(import.meta.url);

export async function nsHttp(netns: string, req: NsRequest): Promise<NsAnswer> {
  const r = await run('nsenter', [`--net=/run/netns/${netns}`, process.execPath, SELF, JSON.stringify(req)], { allowFail: true, timeoutMs: (req.timeoutMs ?? 10_000) + 10_000 });
  if (r.code !== 0) throw new Error(`ns-http in ${netns} failed (${r.code}): ${r.stderr}`);
  const answer = JSON.parse(r.stdout) as NsAnswer;
  if (answer.error) throw new Error(`${req.method ?? 'GET'} ${req.url} in ${netns}: ${answer.error}`);
  return answer;
}

/** Parses complete SSE events (blank-line separated) of a stream's text. */
export function parseSse(text: string): SseEvent[] {
  return text.split(/\n\n/).slice(0, -1).flatMap((block) => {
    const e: SseEvent = {};
    for (const line of block.split('\n')) {
      const m = line.match(/^(id|event|data): ?(.*)$/);
      if (m) e[m[1] as keyof SseEvent] = m[2];
    }
    return e.event || e.data ? [e] : [];
  });
}

function once(req: NsRequest): Promise<NsAnswer> {
  const url = new URL(req.url);
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  const timeoutMs = req.timeoutMs ?? 10_000;
  return new Promise((resolve) => {
    let settled = false;
    const finish = (a: NsAnswer) => { if (!settled) { settled = true; resolve(a); } };
    const r = send(url, { method: req.method ?? 'GET', headers: req.headers ?? {}, agent: false, ...(req.ca ? { ca: readFileSync(req.ca) } : {}) }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      const answer = () => ({ status: res.statusCode ?? 0, headers: res.headers, body });
      res.on('data', (c: string) => {
        body += c;
        if (req.sseEvents !== undefined) {
          const events = parseSse(body);
          const until = req.sseUntil === undefined ? undefined : new RegExp(req.sseUntil);
          if (until ? events.some((e) => until.test(e.data ?? '')) : events.length >= req.sseEvents) { finish({ ...answer(), events }); r.destroy(); }
        }
      });
      res.on('end', () => finish({ ...answer(), ...(req.sseEvents !== undefined ? { events: parseSse(body) } : {}) }));
      res.on('error', () => finish({ ...answer(), ...(req.sseEvents !== undefined ? { events: parseSse(body) } : {}) }));
      setTimeout(() => { finish({ ...answer(), ...(req.sseEvents !== undefined ? { events: parseSse(body) } : {}) }); r.destroy(); }, timeoutMs).unref();
    });
    r.setTimeout(timeoutMs, () => r.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    r.on('error', (e) => finish({ status: 0, headers: {}, body: '', error: e.message }));
    r.end(req.body);
  });
}

if (process.argv[1] === SELF && process.argv[2]) {
  const answer = await once(JSON.parse(process.argv[2]) as NsRequest);
  process.stdout.write(`${JSON.stringify(answer)}\n`);
  process.exit(0);
}
