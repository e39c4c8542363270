import { isIPv4, isIPv6 } from 'node:net';
import { IPVS_SCHEDULERS, ServiceSchema, bytesToIp, canonicalIp, familyOf, formatIssues, ipToBytes } from '../../model/index.js';
import type { Statement } from './parse.js';
import { CHECKERS, UNSUPPORTED_CHECKERS, healthOf, readTimes, translateChecker, type CheckResult, type CheckTimes } from './checkers.js';
import { inKeyOrder, modelName, num, Reporter, type Obj } from './words.js';

/** A `virtual_server` (with its real servers, checkers and `virtual_server_group`) -> services. */

const SCHEDULERS = new Set<string>(IPVS_SCHEDULERS);
const FORWARDING: Record<string, string> = { NAT: 'nat', DR: 'dr', TUN: 'tunnel' };

function expandRange(text: string): string[] | undefined {
  if (familyOf(text)) return [canonicalIp(text)];
  const limit = 256;
  const fromTo = (a: string, b: string): string[] | undefined => {
    const fa = familyOf(a);
    if (!fa || familyOf(b) !== fa) return undefined;
    const x = BigInt(`0x${ipToBytes(a).toString('hex')}`), y = BigInt(`0x${ipToBytes(b).toString('hex')}`);
    if (y < x || y - x >= BigInt(limit)) return undefined;
    const len = fa === 'inet' ? 4 : 16;
    const out: string[] = [];
    for (let v = x; v <= y; v++) out.push(bytesToIp(Buffer.from(v.toString(16).padStart(len * 2, '0'), 'hex')));
    return out;
  };
  const cidr = text.match(/^(.+)\/(\d+)$/);
  if (cidr) {
    const fa = familyOf(cidr[1]!);
    const bits = fa === 'inet' ? 32 : 128;
    const p = Number(cidr[2]);
    if (!fa || p > bits || bits - p > 8) return undefined;
    const base = BigInt(`0x${ipToBytes(cidr[1]!).toString('hex')}`);
    const size = 1n << BigInt(bits - p);
    const start = base - (base % size);
    const len = bits / 8;
    const hex = (v: bigint) => bytesToIp(Buffer.from(v.toString(16).padStart(len * 2, '0'), 'hex'));
    return fromTo(hex(start), hex(start + size - 1n));
  }
  const dash = text.lastIndexOf('-');
  if (dash < 0) return undefined;
  const a = text.slice(0, dash), b = text.slice(dash + 1);
  if (familyOf(b)) return fromTo(a, b);
  if (isIPv4(a) && /^\d{1,3}$/.test(b)) return fromTo(a, `${a.split('.').slice(0, 3).join('.')}.${b}`);
  if (isIPv6(a) && /^[0-9a-fA-F]{1,4}$/.test(b)) return fromTo(a, `${a.replace(/[0-9a-fA-F]{1,4}$/, '')}${b}`);
  return undefined;
}

interface VsGroupEntry { address?: string; port?: number; fwmark?: number; family?: string; at: Statement }

function readGroup(st: Statement, r: Reporter): VsGroupEntry[] {
  const out: VsGroupEntry[] = [];
  for (const e of st.block ?? []) {
    if (e.keyword === 'fwmark') {
      const n = num(e, r, 0, { int: true });
      if (n !== undefined) out.push({ fwmark: n, ...(e.args[1] ? { family: e.args[1] } : {}), at: e });
      continue;
    }
    const addrs = expandRange(e.keyword);
    if (!addrs) { r.skip(e, `virtual_server_group ${st.args[0]}: ${e.keyword} is not an address or a range of at most 256 addresses`); continue; }
    const port = e.args[0] === undefined ? 0 : Number(e.args[0]);
    for (const a of addrs) out.push({ address: a, port, at: e });
  }
  return out;
}

export function translateVirtualServer(st: Statement, groups: Map<string, Statement>, names: Set<string>, r: Reporter): Obj[] {
  let targets: VsGroupEntry[];
  let label: string;
  if (st.args[0] === 'fwmark') {
    const n = num(st, r, 1, { int: true });
    if (n === undefined) return [];
    targets = [{ fwmark: n, at: st }];
    label = `fwmark ${n}`;
  } else if (st.args[0] === 'group') {
    const g = groups.get(st.args[1] ?? '');
    if (!g) { r.skip(st, `virtual_server group ${st.args[1] ?? ''}: no virtual_server_group of that name`); return []; }
    targets = readGroup(g, r);
    label = `group ${st.args[1]}`;
    r.note(st, `virtual_server group ${st.args[1]}: Fulcrum has no service groups; each of its ${targets.length} entries becomes a service with the same backends and health`);
  } else {
    const addr = st.args[0] ?? '';
    if (!familyOf(addr)) { r.skip(st, `virtual_server ${st.args.join(' ')}: ${addr} is not an address`); return []; }
    targets = [{ address: canonicalIp(addr), port: st.args[1] === undefined ? 0 : Number(st.args[1]), at: st }];
    label = `${addr} ${st.args[1] ?? ''}`.trim();
  }

  const svc: Obj = {};
  const vsTimes: CheckTimes = {};
  const flags: Obj = {};
  let vsHost: string | undefined;
  let quorum: number | undefined, hysteresis: number | undefined;
  let sorry: Obj | undefined, sorryAt: Statement | undefined;
  let ipFamily: string | undefined;
  const realServers: Statement[] = [];
  for (const s of st.block ?? []) {
    if (readTimes(s, vsTimes, r)) continue;
    switch (s.keyword) {
      case 'lb_algo': case 'lvs_sched': {
        const a = s.args[0] ?? '';
        if (SCHEDULERS.has(a)) svc.scheduler = a; else r.skip(s, `${s.keyword} ${a}: not an IPVS scheduler Fulcrum has`);
        break;
      }
      case 'lb_kind': case 'lvs_method': {
        const k = (s.args[0] ?? '').toUpperCase();
        const f = FORWARDING[k];
        if (!f) { r.skip(s, `${s.keyword} ${s.args[0] ?? ''}: not NAT, DR or TUN`); break; }
        svc.forwarding = f;
        if (f === 'tunnel' && s.args.length > 1) {
          const tun: Obj = {};
          for (let i = 1; i < s.args.length; i++) {
            const w = s.args[i]!;
            if (w === 'type') tun.type = s.args[++i];
            else if (w === 'port') tun.port = Number(s.args[++i]);
            else if (w === 'nocsum') tun.checksum = 'none';
            else if (w === 'csum' || w === 'remcsum') tun.checksum = w;
            else r.skip(s, `${s.keyword} ${w}: unknown tunnel option`);
          }
          svc.tunnel = tun;
        }
        break;
      }
      case 'protocol': {
        const p = (s.args[0] ?? '').toLowerCase();
        if (p === 'tcp' || p === 'udp' || p === 'sctp') svc.protocol = p; else r.skip(s, `protocol ${s.args[0] ?? ''}: not TCP, UDP or SCTP`);
        break;
      }
      case 'persistence_timeout': {
        const n = s.args[0] === undefined ? 360 : num(s, r, 0, { int: true });
        if (n !== undefined) svc.persistence = { ...(svc.persistence as Obj | undefined), timeout: n };
        break;
      }
      case 'persistence_granularity': {
        const m = s.args[0] ?? '';
        const v = /^\d+$/.test(m) ? Number(m) : m;
        svc.persistence = { timeout: 360, ...(svc.persistence as Obj | undefined), netmask: v };
        break;
      }
      case 'sh-port': case 'mh-port': flags.port = true; break;
      case 'sh-fallback': case 'mh-fallback': flags.fallback = true; break;
      case 'quorum': quorum = num(s, r, 0, { int: true }); break;
      case 'hysteresis': hysteresis = num(s, r, 0, { int: true }); break;
      case 'sorry_server': {
        const a = s.args[0] ?? '';
        if (!familyOf(a)) { r.skip(s, `sorry_server ${a}: not an address`); break; }
        sorry = { address: canonicalIp(a), ...(s.args[1] ? { port: Number(s.args[1]) } : {}) };
        sorryAt = s;
        break;
      }
      case 'virtualhost': vsHost = s.args[0]; break;
      case 'ip_family': ipFamily = s.args[0]; break;
      case 'real_server': realServers.push(s); break;
      case 'ops': r.skip(s, 'ops (one-packet scheduling): not in the model'); break;
      case 'persistence_engine': r.skip(s, `persistence_engine ${s.args[0] ?? ''}: not in the model`); break;
      case 'quorum_up': case 'quorum_down': r.skip(s, `${s.keyword}: Fulcrum has no quorum hooks; watch the quorum events of GET /v1/events instead`); break;
      case 'omega': case 'ha_suspend': case 'smtp_alert': case 'snmp_name': case 'sorry_server_inhibit': case 'sorry_server_lvs_method':
      case 'flag-1': case 'flag-2': case 'flag-3':
        r.skip(s, `${s.keyword}: not in the model`); break;
      default: r.skip(s, `${s.keyword}: unknown virtual_server keyword`);
    }
  }
  if (Object.keys(flags).length > 0) svc.schedulerFlags = flags;
  if (svc.persistence && (svc.persistence as Obj).timeout === undefined) (svc.persistence as Obj).timeout = 360;

  // Real servers and their checkers: Fulcrum checks every backend of a service the same way.
  const backends: Obj[] = [];
  let chosen: CheckResult | undefined;
  const unchecked: Statement[] = [];
  for (const rs of realServers) {
    const addr = rs.args[0] ?? '';
    if (!familyOf(addr)) { r.skip(rs, `real_server ${addr}: not an address`); continue; }
    const b: Obj = { address: canonicalIp(addr) };
    if (rs.args[1] !== undefined) b.port = Number(rs.args[1]);
    const rsTimes: CheckTimes = { ...vsTimes };
    let rsHost = vsHost;
    const checks: CheckResult[] = [];
    for (const s of rs.block ?? []) {
      if (readTimes(s, rsTimes, r)) continue;
      if (CHECKERS.has(s.keyword)) { const c = translateChecker(s, rsTimes, rsHost, r); if (c) checks.push(c); continue; }
      if (UNSUPPORTED_CHECKERS[s.keyword]) { r.skip(s, `${s.keyword}: ${UNSUPPORTED_CHECKERS[s.keyword]}`); continue; }
      switch (s.keyword) {
        case 'weight': { const n = num(s, r, 0, { int: true }); if (n !== undefined) b.weight = n; break; }
        case 'uthreshold': { const n = num(s, r, 0, { int: true }); if (n !== undefined) b.upperThreshold = n; break; }
        case 'lthreshold': { const n = num(s, r, 0, { int: true }); if (n !== undefined) b.lowerThreshold = n; break; }
        case 'virtualhost': rsHost = s.args[0]; break;
        case 'notify_up': case 'notify_down': r.skip(s, `${s.keyword}: Fulcrum has no per-backend hooks; the backend health events of GET /v1/events carry the same transitions`); break;
        case 'lvs_method': case 'lb_kind': r.skip(s, `${s.keyword} on a real_server: Fulcrum forwards all backends of a service the same way`); break;
        default: r.skip(s, `${s.keyword}: unknown real_server keyword`);
      }
    }
    if (checks.length === 0) unchecked.push(rs);
    else {
      const [first, ...more] = checks;
      for (const m of more) r.skip(m.at, `${m.kind}: Fulcrum runs one check per service; only the first checker of a real_server is translated`);
      if (!chosen) chosen = first;
      else if (JSON.stringify(healthOf(first!, new Reporter())) !== JSON.stringify(healthOf(chosen, new Reporter())))
        r.skip(first!.at, `${first!.kind}: differs from the check of the first real_server (${chosen.at.file}:${chosen.at.line}); Fulcrum checks every backend of a service the same way, with that one`);
    }
    backends.push(b);
  }
  if (chosen) {
    if (unchecked.length > 0)
      for (const u of unchecked) r.note(u, `real_server ${u.args.join(' ')} has no checker (keepalived keeps it up); Fulcrum checks it like the others`);
    const health = healthOf(chosen, r);
    if (quorum !== undefined || hysteresis !== undefined) health.quorum = { min: quorum ?? 1, hysteresis: hysteresis ?? 0 };
    if (sorry) health.sorryServer = sorry;
    svc.health = health;
  } else {
    if (realServers.length > 0) r.note(st, `virtual_server ${label}: no checker, so no health section (every backend always takes traffic, as keepalived does)`);
    if (quorum !== undefined || hysteresis !== undefined) r.skip(st, 'quorum/hysteresis: without a checker there is no health section to hold them');
    if (sorry) r.skip(sorryAt!, 'sorry_server: without a checker there is no health section to hold it');
    if (vsTimes.inhibit !== undefined) r.skip(st, 'inhibit_on_failure: without a checker nothing fails');
  }

  const out: Obj[] = [];
  for (const t of targets) {
    const one: Obj = { ...svc };
    if (t.fwmark !== undefined) {
      one.fwmark = t.fwmark;
      const fam = t.family ?? ipFamily ?? (backends[0] ? familyOf(String(backends[0].address)) : undefined);
      if (fam === 'inet6') one.family = 'inet6';
    } else {
      one.address = t.address;
      if (t.port) one.port = t.port;
    }
    one.name = modelName(t.fwmark !== undefined ? `fwmark-${t.fwmark}` : `${one.protocol ?? 'tcp'}-${t.address}-${t.port ?? 0}`, names);
    const fwd = one.forwarding ?? 'nat';
    const clearedPorts = new Set<number>();
    one.backends = backends.map((b) => {
      const copy = { ...b };
      // keepalived clears the port of a fwmark service's DR/TUN real servers (the kernel ignores it
      // there) but its checkers still connect to it.
      if ((fwd === 'dr' || fwd === 'tunnel') && one.fwmark !== undefined && copy.port) {
        clearedPorts.add(Number(copy.port));
        delete copy.port;
      }
      if ((fwd === 'dr' || fwd === 'tunnel') && one.fwmark === undefined && copy.port !== undefined && copy.port !== one.port) {
        r.note(t.at, `real_server ${String(b.address)} ${String(b.port)}: ${fwd} cannot change the port; the backend takes the service port ${String(one.port)}`);
        delete copy.port;
      }
      if (copy.port === one.port) delete copy.port;
      return copy;
    });
    if (clearedPorts.size > 0) {
      const ports = [...clearedPorts];
      r.note(t.at, `fwmark ${String(one.fwmark)} (${fwd}): the real servers' port ${ports.join(', ')} is not in the IPVS table (keepalived clears it too)${one.health && !(one.health as Obj).port ? `; the health check connects to port ${ports[0]}` : ''}`);
      if (one.health && !(one.health as Obj).port) {
        one.health = { ...(one.health as Obj), port: ports[0] };
        if (ports.length > 1) r.note(t.at, `fwmark ${String(one.fwmark)}: real servers on ports ${ports.join(', ')}; Fulcrum checks every backend on one port (${ports[0]})`);
      }
    }
    const ordered = inKeyOrder(one, SERVICE_KEYS);
    const parsed = ServiceSchema.safeParse(ordered);
    if (!parsed.success) {
      r.skip(t.at, `virtual_server ${label}: the translation is not a valid Fulcrum service:\n    ${formatIssues(parsed.error).split('\n').join('\n    ')}`);
      names.delete(String(one.name));
      continue;
    }
    out.push(ordered);
  }
  return out;
}

/** The order an operator reads a service in (the model's own order, identity first). */
const SERVICE_KEYS = ['name', 'address', 'port', 'fwmark', 'family', 'protocol', 'scheduler', 'schedulerFlags', 'forwarding', 'tunnel', 'persistence', 'backends', 'health'];
