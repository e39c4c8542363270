import { relative } from 'node:path';
import { stringify } from 'yaml';
import { parseConfigFile } from '../../model/index.js';
import { parseKeepalivedConfig, type ReportLine } from './parse.js';
import { translateKeepalived, type Translation } from './translate.js';

export { parseKeepalivedConfig, type ReportLine, type Statement } from './parse.js';
export { translateKeepalived, type Translation } from './translate.js';
export { scriptArgv } from './words.js';

export interface KeepalivedImport extends Translation {
  files: string[];
}

/**
 * Reads a keepalived.conf (with its includes) and translates it. Throws (INVALID_CONFIG, with
 * file:line) when it cannot be parsed. The result always passes the model's config parse: what
 * would not is in the report instead.
 */
export function importKeepalived(path: string): KeepalivedImport {
  const parsed = parseKeepalivedConfig(path);
  const t = translateKeepalived(parsed.statements, parsed.report);
  parseConfigFile(t.config);
  // In reading order: by file (as included), then line.
  const order = (f: string) => parsed.files.indexOf(f);
  const report = t.report.map((l, i) => ({ l, i })).sort((a, b) => order(a.l.file) - order(b.l.file) || a.l.line - b.l.line || a.i - b.i).map((x) => x.l);
  return { config: t.config, report, files: parsed.files };
}

/** "conf.d/web.conf:12: not translated: ..." with paths relative to `base` when under it. */
export function formatReportLine(l: ReportLine, base: string): string {
  const rel = relative(base, l.file);
  const file = rel.startsWith('..') ? l.file : rel;
  return `${file}:${l.line}: ${l.kind}: ${l.message}`;
}

/** The YAML for the operator to review: a header naming every report line, then the config. */
export function renderYaml(imp: KeepalivedImport, base: string): string {
  const header = [
    `# Translated from ${imp.files.map((f) => relative(base, f) || f).join(', ')} by \`fulcrum import keepalived\`.`,
    '# Review it before use: `fulcrum config check -f FILE`, then `fulcrum agent --config FILE`.',
  ];
  const skipped = imp.report.filter((l) => l.kind === 'not translated');
  const notes = imp.report.filter((l) => l.kind === 'note');
  const comment = (l: ReportLine) => formatReportLine(l, base).split('\n').map((x) => `#   ${x}`);
  if (skipped.length > 0) header.push(`# not translated: ${skipped.length}`, ...skipped.flatMap(comment));
  if (notes.length > 0) header.push(`# translated with a different meaning: ${notes.length}`, ...notes.flatMap(comment));
  const body: Record<string, unknown> = {};
  if (imp.config.ipvs) body.ipvs = imp.config.ipvs;
  body.services = imp.config.services;
  body.vrrp = imp.config.vrrp;
  return `${header.join('\n')}\n${stringify(body, { lineWidth: 0, aliasDuplicateObjects: false })}`;
}
