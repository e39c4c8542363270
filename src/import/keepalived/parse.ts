import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { FulcrumError } from '../../errors.js';

/**
 * keepalived.conf's block syntax (keepalived.conf(5)): one statement per line, a keyword and its
 * words; a `{` opens the block of the statement before it, `}` closes it; `#` and `!` start a
 * comment anywhere; `"`/`'` quote (the quotes are removed, adjacent text joins, as in a shell).
 * `include PATTERN` (and includer/includem/includew/includeb/includea) is replaced by the
 * statements of every file the pattern matches, relative to the including file's directory.
 */

export interface Origin {
  file: string;
  line: number;
}

export interface Statement extends Origin {
  keyword: string;
  args: string[];
  /** The statements of its `{ ... }` block, when it has one. */
  block?: Statement[];
}

/** Something the importer did not carry over, or carried over with a different meaning. */
export interface ReportLine extends Origin {
  kind: 'not translated' | 'note';
  message: string;
}

interface Token extends Origin {
  text: string;
  /** `{` or `}` as syntax, not as quoted text. */
  brace?: '{' | '}';
}

const INCLUDES = new Set(['include', 'includer', 'includem', 'includew', 'includeb', 'includea']);

function syntaxError(at: Origin, message: string): FulcrumError {
  return new FulcrumError('INVALID_CONFIG', `${at.file}:${at.line}: ${message}`);
}

/** The tokens of one file, grouped by line. */
function tokenize(text: string, file: string): Token[][] {
  const lines: Token[][] = [];
  text.split('\n').forEach((raw, i) => {
    const line = i + 1;
    // An include's pattern may hold csh braces ("{a,b}.conf"): the rest of its line, unsplit.
    const inc = raw.match(/^\s*(include[rmwba]?)\s+(.*)$/);
    if (inc && INCLUDES.has(inc[1]!)) {
      const pattern = inc[2]!.replace(/\s[#!].*$/, '').trim().replace(/^(["'])(.*)\1$/, '$2');
      lines.push([{ text: inc[1]!, file, line }, ...(pattern ? [{ text: pattern, file, line }] : [])]);
      return;
    }
    const out: Token[] = [];
    let cur = '';
    let inWord = false;
    let quote: string | undefined;
    const flush = () => {
      if (inWord) out.push({ text: cur, file, line });
      cur = '';
      inWord = false;
    };
    for (let j = 0; j < raw.length; j++) {
      const c = raw[j]!;
      if (quote) {
        if (c === quote) quote = undefined;
        else if (c === '\\' && quote === '"' && j + 1 < raw.length) cur += raw[++j];
        else cur += c;
        continue;
      }
      if (c === '"' || c === "'") { quote = c; inWord = true; continue; }
      if (c === '#' || c === '!') break;
      if (c === ' ' || c === '\t' || c === '\r') { flush(); continue; }
      if (c === '{' || c === '}') { flush(); out.push({ text: c, brace: c, file, line }); continue; }
      cur += c;
      inWord = true;
    }
    if (quote) throw syntaxError({ file, line }, `unterminated ${quote} quote`);
    flush();
    if (out.length > 0) lines.push(out);
  });
  return lines;
}

/** Matches one path segment against a glob segment (`*`, `?`, `[...]`). */
function segmentMatches(pattern: string, name: string): boolean {
  let re = '^';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const end = pattern.indexOf(']', i + 2);
      if (end < 0) { re += '\\['; continue; }
      let set = pattern.slice(i + 1, end);
      if (set.startsWith('!')) set = `^${set.slice(1)}`;
      re += `[${set.replace(/\\/g, '\\\\')}]`;
      i = end;
    } else re += c.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  if (name.startsWith('.') && !pattern.startsWith('.')) return false;
  return new RegExp(`${re}$`).test(name);
}

/** csh-style braces: "a{b,c}d" -> ["abd", "acd"] (nested braces expand too). */
function expandBraces(pattern: string): string[] {
  const open = pattern.indexOf('{');
  if (open < 0) return [pattern];
  let depth = 0;
  const parts: string[] = [];
  let start = open + 1;
  for (let i = open; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '{') depth++;
    else if (c === '}' && --depth === 0) {
      parts.push(pattern.slice(start, i));
      const head = pattern.slice(0, open), tail = pattern.slice(i + 1);
      return parts.flatMap((p) => expandBraces(`${head}${p}${tail}`));
    } else if (c === ',' && depth === 1) {
      parts.push(pattern.slice(start, i));
      start = i + 1;
    }
  }
  return [pattern];
}

/** The files a glob pattern matches, sorted (as glob(3)); a pattern without wildcards is itself. */
export function globFiles(pattern: string): string[] {
  const out = new Set<string>();
  for (const p of expandBraces(pattern)) {
    if (!/[*?[]/.test(p)) { out.add(p); continue; }
    const absolute = p.startsWith('/');
    let paths = [absolute ? '/' : '.'];
    for (const seg of p.split('/').filter((s) => s !== '')) {
      const next: string[] = [];
      for (const dir of paths) {
        if (!/[*?[]/.test(seg)) { next.push(join(dir, seg)); continue; }
        let names: string[];
        try { names = readdirSync(dir); } catch { continue; }
        for (const n of names.sort()) if (segmentMatches(seg, n)) next.push(join(dir, n));
      }
      paths = next;
    }
    for (const f of paths) {
      try { if (statSync(f).isFile()) out.add(f); } catch { /* vanished or unreadable: no match */ }
    }
  }
  return [...out].sort();
}

export interface ParsedConfig {
  statements: Statement[];
  /** Every file read, the main one first. */
  files: string[];
  report: ReportLine[];
}

/**
 * Reads a keepalived.conf and its includes into a statement tree. A syntax error (an unbalanced
 * brace, an unterminated quote, an unreadable main file, an include loop) throws with file:line;
 * an include that matches nothing is a report line, as keepalived's plain `include` ignores it.
 */
export function parseKeepalivedConfig(path: string): ParsedConfig {
  const files: string[] = [];
  const report: ReportLine[] = [];
  const lines: Token[][] = [];
  const reading: string[] = [];

  const readInto = (file: string, from?: Origin) => {
    const abs = resolve(file);
    if (reading.includes(abs)) throw syntaxError(from ?? { file, line: 0 }, `include loop: ${[...reading, abs].join(' -> ')}`);
    let text: string;
    try {
      text = readFileSync(abs, 'utf8');
    } catch (cause) {
      if (!from) throw new FulcrumError('INVALID_CONFIG', `cannot read ${file}: ${(cause as Error).message}`, { cause });
      report.push({ kind: 'not translated', file: from.file, line: from.line, message: `include ${file}: cannot read it (${(cause as Error).message})` });
      return;
    }
    files.push(abs);
    reading.push(abs);
    for (const tokens of tokenize(text, abs)) {
      const first = tokens[0]!;
      if (!first.brace && INCLUDES.has(first.text)) {
        if (tokens.length !== 2 || tokens[1]!.brace) throw syntaxError(first, `${first.text} takes one file name or pattern`);
        const pattern = tokens[1]!.text;
        const full = isAbsolute(pattern) ? pattern : join(dirname(abs), pattern);
        const matched = globFiles(full);
        if (matched.length === 0 || (matched.length === 1 && !/[*?[{]/.test(pattern) && !existsFile(matched[0]!))) {
          report.push({ kind: 'not translated', file: abs, line: first.line, message: `${first.text} ${pattern}: no file matches` });
          continue;
        }
        for (const f of matched) readInto(f, first);
        continue;
      }
      lines.push(tokens);
    }
    reading.pop();
  };
  readInto(path);

  // Statements: the words of a line up to a brace; a `{` attaches a block to the statement before it
  // (on the same line, or alone on the next line as some configs write it).
  const root: Statement[] = [];
  const stack: Array<{ list: Statement[]; opener?: Statement }> = [{ list: root }];
  let last: Statement | undefined;
  for (const tokens of lines) {
    let words: Token[] = [];
    const end = () => {
      if (words.length > 0) {
        last = { keyword: words[0]!.text, args: words.slice(1).map((w) => w.text), file: words[0]!.file, line: words[0]!.line };
        stack[stack.length - 1]!.list.push(last);
      }
      words = [];
    };
    for (const t of tokens) {
      if (t.brace === '{') {
        end();
        if (!last || last.block) throw syntaxError(t, '"{" without a keyword before it');
        last.block = [];
        stack.push({ list: last.block, opener: last });
        last = undefined;
      } else if (t.brace === '}') {
        end();
        if (stack.length === 1) throw syntaxError(t, '"}" without a matching "{"');
        stack.pop();
        last = undefined;
      } else words.push(t);
    }
    end();
  }
  if (stack.length > 1) {
    const open = stack[stack.length - 1]!.opener!;
    throw syntaxError(open, `the block of ${open.keyword} is never closed ("}" missing)`);
  }
  return { statements: root, files, report };
}

function existsFile(f: string): boolean {
  try { return statSync(f).isFile(); } catch { return false; }
}
