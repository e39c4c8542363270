import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

/**
 * docs/alerts/fulcrum-rules.yml: promtool accepts it and its unit tests (fulcrum-rules.test.yml:
 * every alert firing, and not firing) pass; every metric its expressions use is one the agent
 * registers, so the rules cannot drift from the code.
 */
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const ALERTS = join(ROOT, 'docs/alerts');
const RULES = join(ALERTS, 'fulcrum-rules.yml');
const PROMTOOL = ['/usr/bin/promtool', '/usr/local/bin/promtool'].find((p) => existsSync(p));
const noPromtool = PROMTOOL ? undefined : 'promtool missing (Debian package prometheus; scripts/setup.sh installs it)';
if (noPromtool) console.log(`# ${noPromtool}`);

interface Rule { alert?: string; record?: string; expr: string }
const groups = (parse(readFileSync(RULES, 'utf8')) as { groups: Array<{ name: string; rules: Rule[] }> }).groups;
const rules = groups.flatMap((g) => g.rules);

function promtool(args: string[]): string {
  try {
    return execFileSync(PROMTOOL!, args, { cwd: ALERTS, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 });
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string };
    assert.fail(`promtool ${args.join(' ')} failed:\n${err.stdout ?? ''}${err.stderr ?? ''}`);
  }
}

test('promtool check rules accepts fulcrum-rules.yml', { skip: noPromtool }, () => {
  const out = promtool(['check', 'rules', 'fulcrum-rules.yml']);
  assert.match(out, new RegExp(`SUCCESS: ${rules.length} rules found`));
});

test('promtool test rules: every alert fires in fulcrum-rules.test.yml, and stays silent where it must', { skip: noPromtool }, () => {
  const tests = readFileSync(join(ALERTS, 'fulcrum-rules.test.yml'), 'utf8');
  const doc = parse(tests) as { tests: Array<{ alert_rule_test: Array<{ alertname: string; exp_alerts: unknown[] }> }> };
  const cases = doc.tests.flatMap((t) => t.alert_rule_test);
  for (const r of rules.filter((x) => x.alert)) {
    assert.ok(cases.some((c) => c.alertname === r.alert && c.exp_alerts.length > 0), `${r.alert} has a case where it fires`);
    assert.ok(cases.some((c) => c.alertname === r.alert && c.exp_alerts.length === 0), `${r.alert} has a case where it does not fire`);
  }
  assert.match(promtool(['test', 'rules', 'fulcrum-rules.test.yml']), /SUCCESS/);
});

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) =>
    d.isDirectory() ? sourceFiles(join(dir, d.name)) : d.name.endsWith('.ts') ? [join(dir, d.name)] : []);
}

test('every metric in the rules is registered by the agent (src/)', () => {
  const source = sourceFiles(join(ROOT, 'src')).map((f) => readFileSync(f, 'utf8')).join('\n');
  const registered = new Set([...source.matchAll(/name: '(fulcrum_[a-z0-9_]+)'/g)].map((m) => m[1]!));
  assert.ok(registered.has('fulcrum_vrrp_state'), 'the scan finds the metric definitions');
  const used = new Set(rules.flatMap((r) => [...r.expr.matchAll(/\bfulcrum_[a-z0-9_]+/g)].map((m) => m[0])));
  // Histograms are scraped as name_bucket, name_sum and name_count.
  const unknown = [...used].filter((n) => !registered.has(n) && !registered.has(n.replace(/_(bucket|sum|count)$/, '')));
  assert.deepEqual(unknown, [], `metrics in fulcrum-rules.yml that src/ does not register: ${unknown.join(', ')}`);
  assert.ok(rules.some((r) => /\bup\{job="fulcrum"\}/.test(r.expr)), 'the agent-down rule uses the scrape job');
});
