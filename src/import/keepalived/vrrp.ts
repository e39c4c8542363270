import { familyOf, formatIssues } from '../../model/index.js';
import { VrrpInstanceSchema } from '../../model/vrrp.js';
import type { Statement } from './parse.js';
import { argvOf, inKeyOrder, modelName, num, Reporter, type Obj } from './words.js';

/** A `vrrp_instance` (with the `vrrp_script`s it tracks) -> a VRRP instance. */

const INSTANCE_KEYS = ['name', 'interface', 'vrid', 'priority', 'version', 'advertInterval', 'vips', 'nopreempt', 'preemptDelay', 'unicast', 'auth', 'track', 'syncGroup', 'notify', 'garp'];

export interface ScriptDef { argv?: string[]; interval?: number; timeout?: number; rise?: number; fall?: number; weight?: number; at: Statement }

export function readVrrpScript(st: Statement, r: Reporter): ScriptDef {
  const d: ScriptDef = { at: st };
  for (const s of st.block ?? []) {
    switch (s.keyword) {
      case 'script': d.argv = argvOf(s, 'script', r); break;
      case 'interval': d.interval = num(s, r); break;
      case 'timeout': d.timeout = num(s, r); break;
      case 'rise': d.rise = num(s, r, 0, { int: true }); break;
      case 'fall': d.fall = num(s, r, 0, { int: true }); break;
      case 'weight':
        d.weight = num(s, r, 0, { int: true });
        if (s.args[1] === 'reverse') r.skip(s, 'weight ... reverse: Fulcrum adds a weight while a script fails, never the reverse');
        break;
      case 'user': r.skip(s, 'user: Fulcrum runs scripts as the agent\'s user'); break;
      case 'init_fail': r.note(s, 'init_fail: Fulcrum counts a script as failed until its first result'); break;
      default: r.skip(s, `${s.keyword}: unknown vrrp_script keyword`);
    }
  }
  return d;
}

export const NOTIFY_STATES = new Set(['notify_master', 'notify_backup', 'notify_fault', 'notify_stop', 'notify_deleted', 'notify_master_rx_lower_pri']);

export function translateInstance(
  st: Statement, scripts: Map<string, ScriptDef>, syncGroupOf: Map<string, string>, defaultVersion: number | undefined, globalGarp: Obj, r: Reporter,
): Obj | undefined {
  const name = st.args[0] ?? '';
  const inst: Obj = { name };
  const vips: string[] = [];
  const track: { interfaces: Obj[]; scripts: Obj[] } = { interfaces: [], scripts: [] };
  let version = defaultVersion;
  for (const s of st.block ?? []) {
    switch (s.keyword) {
      case 'state':
        r.note(s, `state ${s.args[0] ?? ''}: Fulcrum has no initial state; every instance starts as backup and the election (priority, preempt) decides, as keepalived does unless priority is 255`);
        break;
      case 'interface': inst.interface = s.args[0]; break;
      case 'virtual_router_id': inst.vrid = num(s, r, 0, { int: true }); break;
      case 'priority': inst.priority = num(s, r, 0, { int: true }); break;
      case 'advert_int': inst.advertInterval = num(s, r); break;
      case 'version': version = num(s, r, 0, { int: true }); break;
      case 'nopreempt': inst.nopreempt = true; break;
      case 'preempt': r.note(s, 'preempt: the default'); break;
      case 'preempt_delay': inst.preemptDelay = num(s, r); break;
      case 'native_ipv6': break; // the VIPs' family decides
      case 'authentication': {
        let type: string | undefined, pass: string | undefined;
        for (const a of s.block ?? []) {
          if (a.keyword === 'auth_type') type = (a.args[0] ?? '').toUpperCase();
          else if (a.keyword === 'auth_pass') pass = a.args[0];
          else r.skip(a, `${a.keyword}: unknown authentication keyword`);
        }
        if (type === 'PASS' && pass) {
          // keepalived keeps the first 8 bytes of a longer password.
          let p = pass;
          while (Buffer.byteLength(p) > 8) p = p.slice(0, -1);
          if (p !== pass) r.note(s, `auth_pass is longer than 8 bytes: keepalived (and so Fulcrum) uses its first 8, "${p}"`);
          inst.auth = { type: 'pass', password: p };
        } else r.skip(s, `authentication ${type ?? '(no auth_type)'}: Fulcrum has PASS only (AH is deprecated by RFC 3768)`);
        break;
      }
      case 'unicast_src_ip':
        if (familyOf(s.args[0] ?? '')) inst.unicast = { ...(inst.unicast as Obj | undefined), source: s.args[0] };
        else r.skip(s, `unicast_src_ip ${s.args[0] ?? ''}: not an address`);
        break;
      case 'unicast_peer': {
        const peers: string[] = [];
        for (const p of s.block ?? []) {
          if (familyOf(p.keyword)) peers.push(p.keyword); else r.skip(p, `unicast_peer ${p.keyword}: not an address`);
          if (p.args.length > 0) r.skip(p, `unicast_peer options ${p.args.join(' ')}: not in the model`);
        }
        if (peers.length > 0) inst.unicast = { ...(inst.unicast as Obj | undefined), peers };
        break;
      }
      case 'virtual_ipaddress':
        for (const v of s.block ?? []) {
          const [addr = '', prefix] = v.keyword.split('/');
          if (!familyOf(addr)) { r.skip(v, `virtual_ipaddress ${v.keyword}: not an address`); continue; }
          vips.push(prefix === undefined ? addr : `${addr}/${prefix}`);
          for (let i = 0; i < v.args.length; i += 2) {
            const opt = v.args[i]!, val = v.args[i + 1];
            if (opt === 'dev' && val === inst.interface) continue;
            r.skip(v, `virtual_ipaddress ${v.keyword} ${opt}${val !== undefined ? ` ${val}` : ''}: Fulcrum adds a VIP on the instance's interface with no other options`);
          }
        }
        break;
      case 'track_interface':
        for (const t of s.block ?? []) {
          const ti: Obj = { interface: t.keyword };
          if (t.args[0] === 'weight') { const w = num(t, r, 1, { int: true }); if (w) ti.weight = w; }
          else if (t.args.length > 0) r.skip(t, `track_interface ${t.keyword} ${t.args.join(' ')}: not understood`);
          track.interfaces.push(ti);
        }
        break;
      case 'track_script':
        for (const t of s.block ?? []) {
          const def = scripts.get(t.keyword);
          if (!def) { r.skip(t, `track_script ${t.keyword}: no vrrp_script of that name`); continue; }
          if (!def.argv) { r.skip(t, `track_script ${t.keyword}: its vrrp_script has no script`); continue; }
          let weight = def.weight;
          if (t.args[0] === 'weight') {
            weight = num(t, r, 1, { int: true });
            if (t.args[2] === 'reverse') r.skip(t, 'weight ... reverse: not in the model');
          }
          const interval = def.interval ?? 1;
          track.scripts.push({
            name: t.keyword, argv: def.argv, interval,
            // keepalived's default timeout is the interval.
            timeout: def.timeout ?? interval,
            rise: def.rise ?? 1, fall: def.fall ?? 1,
            ...(weight ? { weight } : {}),
          });
        }
        break;
      case 'notify':
        inst.notify = { exec: argvOf(s, 'script', r) };
        r.note(s, 'notify: Fulcrum appends (instance, new state, old state) to the argv; keepalived passed (INSTANCE, name, state, priority)');
        break;
      case 'garp_master_delay': { const n = num(s, r); if (n !== undefined) inst.garp = { ...(inst.garp as Obj | undefined), delay: n }; break; }
      case 'garp_master_repeat': { const n = num(s, r, 0, { int: true }); if (n !== undefined) inst.garp = { ...(inst.garp as Obj | undefined), repeat: n }; break; }
      case 'garp_interval': { const n = num(s, r); if (n !== undefined) inst.garp = { ...(inst.garp as Obj | undefined), intervalMs: Math.round(n * 1000) }; break; }
      case 'virtual_ipaddress_excluded':
        r.skip(s, 'virtual_ipaddress_excluded: Fulcrum puts every VIP of an instance in its adverts; add them to vips, or to another instance');
        break;
      case 'track_process': case 'track_file': case 'track_bfd':
        r.skip(s, `${s.keyword}: Fulcrum tracks interfaces, scripts and services; a track script can test the process or file`);
        break;
      case 'lvs_sync_daemon_interface':
        r.skip(s, 'lvs_sync_daemon_interface: use lvs_sync_daemon in global_defs (translated to ipvs.sync)');
        break;
      default:
        if (NOTIFY_STATES.has(s.keyword))
          r.skip(s, `${s.keyword} ${s.args.join(' ')}: Fulcrum has one hook for every transition (notify.exec, given instance, new state, old state); a wrapper that tests the state argument does what ${s.keyword} did`);
        else r.skip(s, `${s.keyword}: unknown vrrp_instance keyword`);
    }
  }
  if (vips.length > 0 && familyOf(vips[0]!.split('/')[0]!) === 'inet6') {
    if (version === 2) r.note(st, 'IPv6 VIPs: keepalived runs VRRPv3 for them whatever the version');
    version = 3;
  }
  inst.version = version ?? 2;
  if (Object.keys(globalGarp).length > 0 || inst.garp) inst.garp = { ...globalGarp, ...(inst.garp as Obj | undefined) };
  inst.vips = vips;
  if (track.interfaces.length > 0 || track.scripts.length > 0)
    inst.track = { ...(track.interfaces.length > 0 ? { interfaces: track.interfaces } : {}), ...(track.scripts.length > 0 ? { scripts: track.scripts } : {}) };
  const group = syncGroupOf.get(name);
  if (group) inst.syncGroup = group;
  if (inst.version === 3 && inst.auth) {
    r.skip(st, 'authentication: VRRPv3 has none (keepalived ignores it for version 3)');
    delete inst.auth;
  }
  if (inst.unicast && !(inst.unicast as Obj).peers) { r.skip(st, 'unicast_src_ip without unicast_peer: not in the model'); delete inst.unicast; }
  const out = inKeyOrder({ ...inst, name: /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/.test(name) ? name : modelName(name, new Set()) }, INSTANCE_KEYS);
  if (out.name !== name) r.note(st, `vrrp_instance ${name}: renamed ${String(out.name)} (Fulcrum names are 1-63 of [A-Za-z0-9_.-])`);
  const parsed = VrrpInstanceSchema.safeParse(out);
  if (!parsed.success) {
    r.skip(st, `vrrp_instance ${name}: the translation is not a valid Fulcrum instance:\n    ${formatIssues(parsed.error).split('\n').join('\n    ')}`);
    return undefined;
  }
  return out;
}

