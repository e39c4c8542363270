import fc from 'fast-check';
import { IPVS_SCHEDULERS, type DesiredStateInput } from '../../src/model/index.js';

/**
 * fast-check arbitraries of valid desired-state INPUT (what an operator writes): every section
 * and most options, in the forms the model accepts (VIPs as text or objects, keepalived's
 * `nopreempt`, defaults left out or spelt out). Valid by construction: names, VIPs and VRIDs are
 * unique by index, families agree, dr/tunnel keep the port.
 */

type Family = 'inet' | 'inet6';
const v4 = (a: number, b: number, c: number) => `10.${a}.${b}.${c}`;
const v6 = (a: number, b: number, c: number) => `2001:db8:${a.toString(16)}:${b.toString(16)}::${(c + 1).toString(16)}`;
const addrOf = (f: Family, a: number, b: number, c: number) => (f === 'inet' ? v4(a, b, c) : v6(a, b, c));

const optional = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: undefined });

/** Drops undefined-valued keys (an absent key and `undefined` mean the same to the model). */
function defined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

function checkArb(family: Family): fc.Arbitrary<Record<string, unknown>> {
  const http = (kind: 'http' | 'https') =>
    fc.record({
      kind: fc.constant(kind),
      method: optional(fc.constantFrom('GET', 'HEAD', 'POST')),
      path: optional(fc.constantFrom('/', '/healthz', '/status?full=1')),
      host: optional(fc.constantFrom('www.example.com', 'backend')),
      status: optional(fc.constantFrom([200], [200, 204], ['200-299'], [301, '200-204'])),
      bodyRegex: optional(fc.constantFrom('ok', '^up$')),
    });
  return fc.oneof(
    fc.record({ kind: fc.constant('tcp') }),
    http('http').map(defined),
    fc.tuple(http('https'), fc.option(fc.record({ sni: optional(fc.constant('www.example.com')), verify: optional(fc.boolean()) }), { nil: undefined }))
      .map(([c, tls]) => defined({ ...c, tls: tls ? defined(tls) : undefined })),
    fc.record({ kind: fc.constant('udp'), payload: optional(fc.constantFrom('ping', 'status')), expect: optional(fc.constantFrom('pong', '^ok')) }).map(defined),
    fc.record({ kind: fc.constant('dns'), name: fc.constantFrom('health.example.com', 'example.org.'), type: optional(fc.constantFrom('A', 'AAAA', 'TXT')), expect: optional(fc.constant([family === 'inet' ? '192.0.2.1' : '2001:db8::1'])) }).map(defined),
    fc.record({ kind: fc.constant('exec'), program: fc.constantFrom('/usr/local/bin/check', '/bin/true'), args: optional(fc.constantFrom([], ['{address}', '{port}'])) }).map(defined),
  );
}

function healthArb(family: Family, svcIndex: number, keepPort: number | undefined): fc.Arbitrary<Record<string, unknown>> {
  return fc
    .record({
      check: checkArb(family),
      intervalMs: fc.integer({ min: 100, max: 30_000 }),
      timeoutShare: fc.integer({ min: 1, max: 100 }),
      jitterShare: optional(fc.integer({ min: 0, max: 49 })),
      rise: optional(fc.integer({ min: 1, max: 10 })),
      fall: optional(fc.integer({ min: 1, max: 10 })),
      address: optional(fc.constant(addrOf(family, 200, svcIndex, 1))),
      port: optional(fc.integer({ min: 1, max: 65535 })),
      initialState: optional(fc.constantFrom('down', 'up')),
      inhibitOnFailure: optional(fc.boolean()),
      quorum: optional(fc.integer({ min: 1, max: 20 }).chain((min) => fc.record({ min: fc.constant(min), hysteresis: optional(fc.integer({ min: 0, max: min - 1 })) }).map(defined))),
      sorry: fc.boolean(),
    })
    .map((h) => {
      const interval = h.intervalMs / 1000;
      return defined({
        check: h.check,
        interval,
        timeout: Math.max(0.001, Math.floor((h.intervalMs * h.timeoutShare) / 100) / 1000),
        jitter: h.jitterShare === undefined ? undefined : Math.floor((h.intervalMs * h.jitterShare) / 100) / 1000,
        rise: h.rise, fall: h.fall, address: h.address, port: h.port, initialState: h.initialState, inhibitOnFailure: h.inhibitOnFailure,
        quorum: h.quorum,
        // dr/tunnel cannot change the port: the sorry server then keeps the service's.
        sorryServer: h.sorry ? defined({ address: addrOf(family, 201, svcIndex, 1), port: keepPort }) : undefined,
      });
    });
}

function ipvsServiceArb(i: number): fc.Arbitrary<Record<string, unknown>> {
  return fc
    .record({
      family: fc.constantFrom<Family>('inet', 'inet6'),
      fwmark: fc.boolean(),
      port: fc.integer({ min: 1, max: 65535 }),
      protocol: optional(fc.constantFrom('tcp', 'udp', 'sctp')),
      scheduler: optional(fc.constantFrom(...IPVS_SCHEDULERS)),
      schedFlags: optional(fc.record({ fallback: optional(fc.boolean()), port: optional(fc.boolean()) }).map(defined)),
      forwarding: optional(fc.constantFrom('nat', 'dr', 'tunnel')),
      tunnel: optional(fc.constantFrom('ipip', 'gre', 'gue')),
      persistence: optional(fc.record({ timeout: optional(fc.integer({ min: 1, max: 86400 })), mask: optional(fc.integer({ min: 0, max: 32 })), dotted: fc.boolean() })),
      backends: fc.array(fc.record({ port: optional(fc.integer({ min: 1, max: 65535 })), weight: optional(fc.integer({ min: 0, max: 1000 })), upper: optional(fc.integer({ min: 0, max: 5000 })), lower: optional(fc.integer({ min: 0, max: 5000 })) }), { maxLength: 4 }),
      description: optional(fc.constantFrom('web tier', 'dns')),
      withHealth: fc.boolean(),
      explicitDefaults: fc.boolean(),
    })
    .chain((s) => {
      const keepsPort = s.forwarding === 'dr' || s.forwarding === 'tunnel';
      const base: Record<string, unknown> = defined({
        name: `svc${i}`,
        description: s.description,
        dataplane: s.explicitDefaults ? 'ipvs' : undefined,
        protocol: s.protocol,
        scheduler: s.scheduler,
        schedulerFlags: s.scheduler === 'sh' || s.scheduler === 'mh' ? s.schedFlags : undefined,
        forwarding: s.forwarding,
        tunnel: s.forwarding === 'tunnel' && s.tunnel ? defined({ type: s.tunnel, port: s.tunnel === 'gue' ? 6080 : undefined }) : undefined,
        persistence: s.persistence
          ? defined({
              timeout: s.persistence.timeout,
              netmask: s.persistence.mask === undefined ? undefined : s.family === 'inet' && s.persistence.dotted ? prefixToMask(s.persistence.mask) : s.persistence.mask,
            })
          : undefined,
      });
      if (s.fwmark) Object.assign(base, { fwmark: i + 1, family: s.family });
      else Object.assign(base, { address: addrOf(s.family, 0, i, 0), port: s.port });
      base.backends = s.backends.map((b, j) => {
        const lower = b.lower !== undefined && b.upper !== undefined && b.lower > b.upper ? b.upper : b.lower;
        // A fwmark service's backends need a port of their own for a port-checking health check.
        const port = s.fwmark ? b.port ?? 8000 + j : keepsPort ? undefined : b.port;
        return defined({ address: addrOf(s.family, 1, i, j), port, weight: b.weight, upperThreshold: b.upper, lowerThreshold: lower });
      });
      if (!s.withHealth) return fc.constant(base);
      return healthArb(s.family, i, undefined).map((health) => {
        if (keepsPort && !s.fwmark && health.sorryServer) delete (health.sorryServer as Record<string, unknown>).port;
        if (s.fwmark && health.sorryServer) (health.sorryServer as Record<string, unknown>).port = 8080;
        return { ...base, health };
      });
    });
}

function xdpServiceArb(i: number): fc.Arbitrary<Record<string, unknown>> {
  return fc
    .record({
      family: fc.constantFrom<Family>('inet', 'inet6'),
      port: fc.integer({ min: 1, max: 65535 }),
      protocol: optional(fc.constantFrom('tcp', 'udp')),
      forwarding: optional(fc.constantFrom('nat', 'dr')),
      scheduler: optional(fc.constant('maglev')),
      backends: fc.array(fc.record({ port: optional(fc.integer({ min: 1, max: 65535 })), weight: optional(fc.integer({ min: 0, max: 100 })), mac: optional(fc.constantFrom('02:00:00:00:00:0A', '02:aa:bb:cc:dd:ee')) }), { maxLength: 4 }),
      withHealth: fc.boolean(),
    })
    .chain((s) => {
      const base = defined({
        name: `xdp${i}`, dataplane: 'xdp', address: addrOf(s.family, 2, i, 0), port: s.port, protocol: s.protocol, forwarding: s.forwarding, scheduler: s.scheduler,
        backends: s.backends.map((b, j) => defined({ address: addrOf(s.family, 3, i, j), port: s.forwarding === 'dr' ? undefined : b.port, weight: b.weight, mac: b.mac })),
      });
      if (!s.withHealth) return fc.constant(base);
      return healthArb(s.family, 100 + i, undefined).map((health) => {
        if (s.forwarding === 'dr' && health.sorryServer) delete (health.sorryServer as Record<string, unknown>).port;
        return { ...base, health };
      });
    });
}

function prefixToMask(prefix: number): string {
  const n = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  return [24, 16, 8, 0].map((s) => (n >>> s) & 255).join('.');
}

function vrrpArb(i: number, serviceNames: string[]): fc.Arbitrary<Record<string, unknown>> {
  return fc
    .record({
      family: fc.constantFrom<Family>('inet', 'inet6'),
      v2: fc.boolean(),
      advert: fc.integer({ min: 1, max: 4095 }),
      priority: optional(fc.integer({ min: 1, max: 255 })),
      vips: fc.array(fc.record({ prefix: optional(fc.integer({ min: 8, max: 32 })), asObject: fc.boolean() }), { minLength: 1, maxLength: 3 }),
      preempt: fc.constantFrom('default', 'preempt', 'nopreempt', 'both'),
      preemptDelay: optional(fc.integer({ min: 0, max: 300 })),
      unicast: fc.boolean(),
      withSource: fc.boolean(),
      auth: fc.boolean(),
      tracked: fc.subarray(serviceNames, { maxLength: Math.min(2, serviceNames.length) }),
      trackWeight: optional(fc.integer({ min: -254, max: 254 })),
      trackIf: fc.boolean(),
      scripts: fc.integer({ min: 0, max: 2 }),
      syncGroup: optional(fc.constantFrom('g1', 'g2')),
      notify: fc.boolean(),
      garp: optional(fc.record({ repeat: optional(fc.integer({ min: 1, max: 10 })), intervalMs: optional(fc.integer({ min: 0, max: 100 })), delay: optional(fc.integer({ min: 0, max: 10 })) }).map(defined)),
    })
    .map((v) => {
      const family: Family = v.v2 ? 'inet' : v.family;
      const max = family === 'inet' ? 32 : 128;
      const vips = v.vips.map((x, j) => {
        const address = addrOf(family, 50, i, j);
        const prefix = x.prefix === undefined ? undefined : Math.min(x.prefix, max);
        return x.asObject ? defined({ address, prefix }) : prefix === undefined ? address : `${address}/${prefix}`;
      });
      return defined({
        name: `vi${i}`,
        interface: `eth${i % 3}`,
        vrid: i + 1,
        priority: v.priority,
        version: v.v2 ? 2 : undefined,
        // v2 advertises whole seconds; v3 centiseconds.
        advertInterval: v.v2 ? 1 + (v.advert % 255) : v.advert / 100,
        vips,
        preempt: v.preempt === 'preempt' || v.preempt === 'both' ? true : undefined,
        nopreempt: v.preempt === 'nopreempt' ? true : v.preempt === 'both' ? false : undefined,
        preemptDelay: v.preemptDelay,
        unicast: v.unicast ? defined({ source: v.withSource ? addrOf(family, 60, i, 0) : undefined, peers: [addrOf(family, 60, i, 1)] }) : undefined,
        auth: v.v2 && v.auth ? { type: 'pass', password: 'secret' } : undefined,
        track:
          v.tracked.length || v.trackIf || v.scripts
            ? {
                services: v.tracked.map((service) => defined({ service, weight: v.trackWeight })),
                interfaces: v.trackIf ? [{ interface: 'uplink0', weight: v.trackWeight }].map(defined) : [],
                scripts: Array.from({ length: v.scripts }, (_, k) => ({ name: `chk${k}`, argv: ['/usr/local/bin/check', String(k)], interval: 1 + k })),
              }
            : undefined,
        syncGroup: v.syncGroup,
        notify: v.notify ? { exec: ['/usr/local/bin/notify'], webhook: 'http://127.0.0.1:9/hook' } : undefined,
        garp: v.garp,
      });
    });
}

const xdpSettingsArb = fc.record({
  interfaces: fc.subarray(['eth0', 'eth1', 'bond0.100'], { minLength: 1 }).chain((names) => fc.tuple(...names.map((name) => fc.record({ name: fc.constant(name), mode: optional(fc.constantFrom('native', 'generic')) }).map(defined)))),
  conntrackSize: optional(fc.constantFrom(1024, 262_144)),
  maglevTableSize: optional(fc.constantFrom(251, 1009, 65_537)),
  maxVips: optional(fc.integer({ min: 1, max: 64 })),
  maxBackends: optional(fc.integer({ min: 1, max: 4096 })),
  detachOnShutdown: optional(fc.boolean()),
}).map(defined);

const ipvsSettingsArb = fc.record({
  sync: optional(fc.record({
    interface: fc.constantFrom('eth1', 'sync0'), syncId: fc.integer({ min: 1, max: 255 }),
    group: optional(fc.constantFrom('224.0.0.81', '239.1.2.3', 'ff02::81')), port: optional(fc.integer({ min: 1, max: 65535 })),
    ttl: optional(fc.integer({ min: 1, max: 255 })), maxLength: optional(fc.integer({ min: 256, max: 9000 })),
    refreshPeriod: optional(fc.integer({ min: 0, max: 600 })), retries: optional(fc.integer({ min: 0, max: 3 })),
  }).map(defined)),
}).map(defined);

/** A valid desired state as an operator would write it. */
export const desiredStateInputArb: fc.Arbitrary<DesiredStateInput> = fc
  .record({ ipvs: fc.integer({ min: 0, max: 4 }), xdp: fc.integer({ min: 0, max: 3 }), vrrp: fc.integer({ min: 0, max: 3 }), xdpSettings: fc.boolean(), ipvsSettings: fc.boolean() })
  .chain((n) => {
    const names = [...Array.from({ length: n.ipvs }, (_, i) => `svc${i}`), ...Array.from({ length: n.xdp }, (_, i) => `xdp${i}`)];
    return fc.record({
      services: fc.tuple(...Array.from({ length: n.ipvs }, (_, i) => ipvsServiceArb(i)), ...Array.from({ length: n.xdp }, (_, i) => xdpServiceArb(i))),
      vrrp: fc.tuple(...Array.from({ length: n.vrrp }, (_, i) => vrrpArb(i, names))),
      xdp: n.xdpSettings || n.xdp > 0 ? xdpSettingsArb : fc.constant(undefined),
      ipvs: n.ipvsSettings ? ipvsSettingsArb : fc.constant(undefined),
    });
  })
  .map((s) => defined(s) as DesiredStateInput);
