import { formatIssues, serviceKey } from '../../model/index.js';
import { IpvsSettingsSchema } from '../../model/ipvs.js';
import type { ReportLine, Statement } from './parse.js';
import { translateVirtualServer } from './virtual-server.js';
import { NOTIFY_STATES, readVrrpScript, translateInstance, type ScriptDef } from './vrrp.js';
import { num, Reporter, type Obj } from './words.js';

/**
 * keepalived statements -> the model's input (a config file: services, vrrp, ipvs). Every
 * statement is either translated, or named in the report with its file:line and why; a keyword
 * whose keepalived meaning the model expresses differently is translated with a `note`.
 */

export interface Translation {
  config: { ipvs?: Obj; services: Obj[]; vrrp: Obj[] };
  report: ReportLine[];
}

const GLOBAL_NOT_IN_MODEL = 'not in the model (a keepalived process setting)';

export function translateKeepalived(statements: Statement[], report: ReportLine[] = []): Translation {
  const r = new Reporter();
  r.lines.push(...report);
  const groups = new Map<string, Statement>();
  const scripts = new Map<string, ScriptDef>();
  const syncGroupOf = new Map<string, string>();
  let defaultVersion: number | undefined;
  let syncDaemon: Statement | undefined;
  /** global_defs vrrp_garp_*: every instance's defaults. */
  const globalGarp: Obj = {};

  for (const st of statements) {
    if (st.keyword === 'virtual_server_group') groups.set(st.args[0] ?? '', st);
    else if (st.keyword === 'vrrp_script') scripts.set(st.args[0] ?? '', readVrrpScript(st, r));
    else if (st.keyword === 'vrrp_sync_group') {
      const name = st.args[0] ?? '';
      for (const s of st.block ?? []) {
        if (s.keyword === 'group') for (const m of s.block ?? []) syncGroupOf.set(m.keyword, name);
        else if (NOTIFY_STATES.has(s.keyword) || s.keyword === 'notify')
          r.skip(s, `${s.keyword}: Fulcrum has no sync-group hooks; each instance's notify.exec runs on its own transitions`);
        else if (!s.block && s.args.length === 0 && /^[A-Za-z0-9_.-]+$/.test(s.keyword) && !['smtp_alert', 'global_tracking', 'sync_group_tracking_weight'].includes(s.keyword))
          syncGroupOf.set(s.keyword, name); // the old form: members listed without a group block
        else r.skip(s, `${s.keyword}: not in the model`);
      }
    } else if (st.keyword === 'global_defs') {
      for (const s of st.block ?? []) {
        if (s.keyword === 'vrrp_version') defaultVersion = num(s, r, 0, { int: true });
        else if (s.keyword === 'lvs_sync_daemon') syncDaemon = s;
        else if (s.keyword === 'vrrp_garp_master_delay') { const n = num(s, r); if (n !== undefined) globalGarp.delay = n; }
        else if (s.keyword === 'vrrp_garp_master_repeat') { const n = num(s, r, 0, { int: true }); if (n !== undefined) globalGarp.repeat = n; }
        else if (s.keyword === 'vrrp_garp_interval') { const n = num(s, r); if (n !== undefined) globalGarp.intervalMs = Math.round(n * 1000); }
        else r.skip(s, `global_defs ${s.keyword}: ${GLOBAL_NOT_IN_MODEL}`);
      }
    }
  }

  const config: Translation['config'] = { services: [], vrrp: [] };
  const names = new Set<string>();
  const keys = new Map<string, Statement>();
  const instances: Obj[] = [];
  for (const st of statements) {
    switch (st.keyword) {
      case 'global_defs': case 'virtual_server_group': case 'vrrp_script': case 'vrrp_sync_group': break;
      case 'virtual_server':
        for (const svc of translateVirtualServer(st, groups, names, r)) {
          const key = serviceKey({ ...(svc as { fwmark?: number; address?: string; port?: number; family?: string }), protocol: String(svc.protocol ?? 'tcp') });
          const prev = keys.get(key);
          if (prev) { r.skip(st, `${key}: already defined at ${prev.file}:${prev.line}`); names.delete(String(svc.name)); continue; }
          keys.set(key, st);
          config.services.push(svc);
        }
        break;
      case 'vrrp_instance': {
        const inst = translateInstance(st, scripts, syncGroupOf, defaultVersion, globalGarp, r);
        if (inst) instances.push(inst);
        break;
      }
      case 'static_ipaddress': case 'static_routes': case 'static_rules': case 'virtual_routes': case 'virtual_rules':
        r.skip(st, `${st.keyword}: Fulcrum does not manage addresses or routes outside a VRRP instance's vips`); break;
      case 'SSL': r.skip(st, 'SSL: a client certificate for SSL_GET is not in the model'); break;
      default: r.skip(st, `${st.keyword}: unknown top-level keyword`);
    }
  }
  config.vrrp = instances;

  if (syncDaemon) {
    const s = syncDaemon;
    const sync: Obj = { interface: s.args[0] };
    let i = 1;
    let inst: string | undefined;
    if (s.args[i] === 'inst') i++;
    if (s.args[i] && !['id', 'maxlen', 'port', 'ttl', 'group'].includes(s.args[i]!)) inst = s.args[i++];
    for (; i < s.args.length; i += 2) {
      const k = s.args[i]!, v = s.args[i + 1];
      if (k === 'id') sync.syncId = Number(v);
      else if (k === 'maxlen') sync.maxLength = Number(v);
      else if (k === 'port') sync.port = Number(v);
      else if (k === 'ttl') sync.ttl = Number(v);
      else if (k === 'group') sync.group = v;
      else r.skip(s, `lvs_sync_daemon ${k}: unknown option`);
    }
    if (sync.syncId === undefined && inst) {
      const vi = instances.find((x) => x.name === inst);
      if (vi) sync.syncId = vi.vrid;
    }
    if (inst) r.note(s, `lvs_sync_daemon ... ${inst}: keepalived runs only the master (or backup) daemon as ${inst} is master (or not); Fulcrum runs both on every node (docs/ipvs.md)`);
    // keepalived never refreshed quiet connections unless told; Fulcrum's default refreshes every 10 s.
    const parsed = IpvsSettingsSchema.safeParse({ sync });
    if (parsed.success) config.ipvs = { sync };
    else r.skip(s, `lvs_sync_daemon: the translation is not valid:\n    ${formatIssues(parsed.error).split('\n').join('\n    ')}`);
  }
  return { config, report: r.lines };
}
