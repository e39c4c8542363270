/**
 * Many `GET /v1/explain` calls from inside a netns (the agent's API listens on its loopback):
 * `node explain-batch.js SERVER TOKEN_FILE QUERIES_JSON`, QUERIES_JSON an array of query strings
 * ("client=...&vip=...&port=...&proto=tcp"). Prints a JSON array of {status, body}, 10 at a time.
 */
import { readFileSync } from 'node:fs';

const [server = '', tokenFile = '', queries = '[]'] = process.argv.slice(2);
const token = readFileSync(tokenFile, 'utf8').trim();
const list = (JSON.parse(queries) as string[]).slice(0, 1000);
const out: Array<{ status: number; body: unknown }> = [];
for (let i = 0; i < list.length; i += 10) {
  out.push(...await Promise.all(list.slice(i, i + 10).map(async (q) => {
    const res = await fetch(`${server}/v1/explain?${q}`, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(10_000) });
    return { status: res.status, body: await res.json() as unknown };
  })));
}
console.log(JSON.stringify(out));
