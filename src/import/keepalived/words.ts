import type { Origin, ReportLine, Statement } from './parse.js';

/** The pieces every part of the translation uses: the report, keepalived's value syntax, names. */

export type Obj = Record<string, unknown>;

export class Reporter {
  readonly lines: ReportLine[] = [];
  skip(at: Origin, message: string): void { this.lines.push({ kind: 'not translated', file: at.file, line: at.line, message }); }
  note(at: Origin, message: string): void { this.lines.push({ kind: 'note', file: at.file, line: at.line, message }); }
}

const BOOL_TRUE = new Set(['on', 'true', 'yes']);
const BOOL_FALSE = new Set(['off', 'false', 'no']);

/** A keyword's optional <BOOL> argument: absent means true. */
export function flag(st: Statement, r: Reporter): boolean {
  const a = st.args[0]?.toLowerCase();
  if (a === undefined || BOOL_TRUE.has(a)) return true;
  if (BOOL_FALSE.has(a)) return false;
  r.skip(st, `${st.keyword} ${st.args.join(' ')}: not a boolean`);
  return false;
}

export function num(st: Statement, r: Reporter, i = 0, opts: { int?: boolean } = {}): number | undefined {
  const text = st.args[i];
  const n = text === undefined ? NaN : Number(text);
  if (!Number.isFinite(n) || (opts.int && !Number.isInteger(n))) {
    r.skip(st, `${st.keyword}: ${text === undefined ? 'missing value' : `${text} is not a ${opts.int ? 'whole ' : ''}number`}`);
    return undefined;
  }
  return n;
}

/**
 * keepalived splits a script string into words itself (unquoted spaces separate them, single
 * quotes group) and execs it without a shell; the argv is those words.
 */
export function scriptArgv(text: string): string[] {
  const out: string[] = [];
  let cur = '', inWord = false, quoted = false;
  for (const c of text) {
    if (quoted) { if (c === "'") quoted = false; else cur += c; continue; }
    if (c === "'") { quoted = true; inWord = true; continue; }
    if (c === ' ' || c === '\t') { if (inWord) out.push(cur); cur = ''; inWord = false; continue; }
    cur += c; inWord = true;
  }
  if (inWord) out.push(cur);
  return out;
}

export function argvOf(st: Statement, what: string, r: Reporter): string[] | undefined {
  const text = st.args[0];
  if (text === undefined || text.trim() === '') { r.skip(st, `${st.keyword}: no ${what} given`); return undefined; }
  const argv = scriptArgv(text);
  if (st.args.length > 1) r.skip(st, `${st.keyword} user/group ${st.args.slice(1).join(' ')}: Fulcrum runs hooks as the agent's user`);
  if (/[|&;<>$`()*?~]/.test(text))
    r.note(st, `${st.keyword} "${text}": shell syntax is not interpreted; the words are passed literally as argv ${JSON.stringify(argv)}`);
  return argv;
}

/** keepalived names are free text; the model's are 1-63 of [A-Za-z0-9_.-]. */
export function modelName(text: string, used: Set<string>): string {
  let base = text.replace(/[^A-Za-z0-9_.-]+/g, '-').replace(/^[^A-Za-z0-9]+/, '').slice(0, 58) || 'x';
  let name = base, n = 2;
  while (used.has(name)) name = `${base}-${n++}`;
  used.add(name);
  return name;
}

export function inKeyOrder(o: Obj, keys: string[]): Obj {
  const out: Obj = {};
  for (const k of keys) if (o[k] !== undefined) out[k] = o[k];
  for (const [k, v] of Object.entries(o)) if (!(k in out) && v !== undefined) out[k] = v;
  return out;
}
