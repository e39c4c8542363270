// The Fulcrum dashboard (docs/dashboard.md). One module, no dependencies, served by the agent.
// Data comes only from the agent's API: /v1/services, /v1/status (health, VRRP), /v1/drains,
// /v1/services/NAME/stats (counters; rates are differences between two reads) and /v1/events
// (SSE read through fetch, since EventSource cannot send the Authorization header). Everything is
// rendered with textContent, never as HTML. The token lives in sessionStorage only.

const TOKEN_KEY = 'fulcrum.token';
/** Most events kept in the list. */
const EVENTS_SHOWN = 50;
/** Event types after which the page reads these resources again. */
const REFRESH_ON = {
  apply: ['services', 'status', 'drains'], 'apply-failed': ['status'], 'reconcile-failed': ['status'],
  'drift-repaired': ['status'], 'health-applied': ['status'], 'backend-up': ['status'], 'backend-down': ['status'],
  'quorum-lost': ['status'], 'quorum-regained': ['status'], 'vrrp-transition': ['status'], 'vrrp-maintenance': ['status'],
  'vrrp-split-brain': ['status'], 'vrrp-error': ['status'],
};

const $ = (id) => document.getElementById(id);

/** The session: one abort controller for every request and the stream; a new token starts a new one. */
let session;
const data = { services: [], servicesEtag: undefined, status: undefined, drains: [], stats: new Map(), events: [], last: undefined };
/** Per backend key: the last counters read and the rates derived from the two last reads. */
const samples = new Map();
const rates = new Map();

function token() {
  return sessionStorage.getItem(TOKEN_KEY) ?? undefined;
}

class Unauthorized extends Error {}

async function api(path, headers = {}) {
  const t = token();
  const res = await fetch(path, {
    headers: { accept: 'application/json', ...headers, ...(t ? { authorization: `Bearer ${t}` } : {}) },
    signal: session.signal, cache: 'no-store', credentials: 'omit', referrerPolicy: 'no-referrer',
  });
  if (res.status === 401) throw new Unauthorized();
  return res;
}

async function json(path) {
  const res = await api(path);
  if (!res.ok) throw new Error(`${path}: ${await errorText(res)}`);
  return res.json();
}

async function errorText(res) {
  try {
    const body = await res.json();
    return `${res.status} ${body.code ?? ''} ${body.message ?? ''}`.trim();
  } catch {
    return `HTTP ${res.status}`;
  }
}

// ---- reading the API ---------------------------------------------------------------------

const readers = {
  async services() {
    const res = await api('/v1/services', data.servicesEtag ? { 'if-none-match': data.servicesEtag } : {});
    if (res.status === 304) return;
    if (!res.ok) throw new Error(`/v1/services: ${await errorText(res)}`);
    data.servicesEtag = res.headers.get('etag') ?? undefined;
    data.services = (await res.json()).services;
  },
  async status() {
    data.status = await json('/v1/status');
  },
  async drains() {
    data.drains = (await json('/v1/drains')).drains;
  },
  async stats() {
    const now = performance.now();
    const all = await Promise.all(data.services.map((s) => json(`/v1/services/${encodeURIComponent(s.name)}/stats`).catch(() => undefined)));
    data.stats = new Map();
    for (const st of all) {
      if (!st) continue;
      data.stats.set(st.service, st);
      for (const b of st.backends) {
        const key = `${st.service}/${endpoint(b.address, b.port)}`;
        const prev = samples.get(key);
        samples.set(key, { at: now, c: b.counters });
        if (!prev || now <= prev.at) continue;
        const dt = (now - prev.at) / 1000;
        const per = (f) => (b.counters[f] >= prev.c[f] ? (b.counters[f] - prev.c[f]) / dt : undefined);
        rates.set(key, { conns: per('connections'), packets: sum(per('packetsIn'), per('packetsOut')), bytes: sum(per('bytesIn'), per('bytesOut')) });
      }
    }
  },
};

const sum = (a, b) => (a === undefined || b === undefined ? undefined : a + b);
const endpoint = (address, port) => (address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`);

let pending = new Set();
let timer;
/** Reads `what` soon (requests asked for within 50 ms are made once), then renders. */
function refresh(...what) {
  for (const w of what) pending.add(w);
  if (timer === undefined) timer = setTimeout(flush, 50);
}

let flushing = Promise.resolve();
function flush() {
  timer = undefined;
  const what = pending;
  pending = new Set();
  const s = session;
  flushing = flushing.then(async () => {
    try {
      await Promise.all([...what].filter((w) => w !== 'stats').map((w) => readers[w]()));
      if (what.has('stats')) await readers.stats();
      if (s !== session) return;
      showError(undefined);
      render();
    } catch (e) {
      if (s.signal.aborted) return;
      if (e instanceof Unauthorized) return signIn('the agent refused the token (401); give another');
      showError(String(e.message ?? e));
    }
  });
}

/**
 * Counters (for the rates), drains and everything else are also polled, every 5 s (slower with many
 * services: at most ~4 requests a second, well under the API's default rate limit); changes of
 * health and VRRP state arrive sooner through the event stream.
 */
function pollLoop() {
  const s = session;
  const tick = () => {
    if (s !== session || s.signal.aborted) return;
    refresh('services', 'status', 'drains', 'stats');
    const requests = 3 + data.services.length;
    setTimeout(tick, Math.max(5000, 250 * requests));
  };
  tick();
}

// ---- the event stream (SSE over fetch) ------------------------------------------------------

async function stream() {
  const s = session;
  let retry = 2000;
  let connected = false;
  while (!s.signal.aborted) {
    try {
      // Always from the start of the agent's ring: a restarted agent numbers its events from 1 again,
      // so ?since=<last id> could skip its new ones. What was seen already is left out (onFrame).
      const res = await api('/v1/events?since=0', { accept: 'text/event-stream' });
      if (!res.ok) throw new Error(`/v1/events: ${await errorText(res)}`);
      setLive(true);
      // Events may have been missed while the stream was down: read everything again.
      if (connected) refresh('services', 'status', 'drains', 'stats');
      connected = true;
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value.replace(/\r\n?/g, '\n');
        let end;
        while ((end = buf.indexOf('\n\n')) >= 0) {
          const frame = buf.slice(0, end);
          buf = buf.slice(end + 2);
          const ms = onFrame(frame);
          if (ms !== undefined) retry = ms;
        }
      }
    } catch (e) {
      if (s.signal.aborted) return;
      if (e instanceof Unauthorized) return signIn('the agent refused the token (401); give another');
    }
    setLive(false);
    await new Promise((r) => setTimeout(r, retry));
  }
}

/** One SSE frame; returns a new retry time when the frame sets one. */
function onFrame(frame) {
  let id, type, payload = '', retry;
  for (const line of frame.split('\n')) {
    if (line === '' || line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
    if (field === 'id') id = value;
    else if (field === 'event') type = value;
    else if (field === 'data') payload += (payload ? '\n' : '') + value;
    else if (field === 'retry' && /^\d+$/.test(value)) retry = Number(value);
  }
  if (payload) {
    let e;
    try { e = JSON.parse(payload); } catch { e = { type, message: payload }; }
    const seq = id !== undefined && /^\d+$/.test(id) ? Number(id) : e.seq;
    const time = Date.parse(e.time ?? '') || 0;
    // Seen before this (re)connection: an id not above the last one, from no later than it.
    if (data.last && seq <= data.last.seq && time <= data.last.time) return retry;
    data.last = { seq, time };
    data.events.unshift(e);
    data.events.length = Math.min(data.events.length, EVENTS_SHOWN);
    const what = REFRESH_ON[e.type ?? type];
    if (what) refresh(...what);
    renderEvents();
  }
  return retry;
}

// ---- rendering ----------------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue;
    if (k === 'class') node.className = v;
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) if (c !== undefined && c !== null) node.append(c instanceof Node ? c : String(c));
  return node;
}

const fmtRate = (v, unit) => {
  if (v === undefined) return '–';
  const k = [[1e9, 'G'], [1e6, 'M'], [1e3, 'k']].find(([n]) => v >= n);
  return k ? `${(v / k[0]).toFixed(1)} ${k[1]}${unit}/s` : `${v.toFixed(v < 10 ? 1 : 0)} ${unit}/s`;
};

/** Time since an ISO date: "12 s", "3 min", "5 h". */
function since(iso) {
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  return s < 60 ? `${s} s` : s < 3600 ? `${Math.round(s / 60)} min` : `${Math.round(s / 3600)} h`;
}

function render() {
  renderAgent();
  renderServices();
  renderVrrp();
}

function renderAgent() {
  const st = data.status;
  if (!st) return;
  const dps = st.dataplanes.map((d) => `${d.name} ${d.available ? 'available' : 'missing'}`).join(', ');
  $('agent').textContent = `revision ${st.revision} · ${st.ready ? 'ready' : 'starting'} · ${dps}${st.stale ? ' · STALE (store disconnected)' : ''}`;
}

function renderServices() {
  const health = new Map((data.status?.health ?? []).map((h) => [h.service, h]));
  const box = $('services');
  if (data.services.length === 0) return box.replaceChildren(el('p', { class: 'muted' }, 'no services'));
  box.replaceChildren(...data.services.map((svc) => {
    const h = health.get(svc.name);
    const st = data.stats.get(svc.name);
    const where = svc.fwmark !== undefined ? `fwmark ${svc.fwmark}` : `${endpoint(svc.address, svc.port)}/${svc.protocol}`;
    const rows = backendRows(svc, h, st);
    const quorum = h?.quorum ? el('span', { class: `pill ${h.quorum.held ? 'up' : 'down'}` }, h.quorum.held ? 'quorum held' : `quorum lost${h.quorum.sorryServerActive ? ' (sorry server)' : ''}`) : undefined;
    return el('article', { class: 'service', 'data-service': svc.name },
      el('h3', {}, el('span', { class: 'name' }, svc.name), ' ', el('span', { class: 'vip' }, where), ' ',
        el('span', { class: 'muted' }, `${svc.dataplane} · ${svc.forwarding} · ${svc.scheduler ?? (svc.dataplane === 'xdp' ? 'maglev' : 'wlc')}${h ? ` · ${h.kind} check` : ''}`), ' ', quorum),
      svc.description ? el('p', { class: 'muted' }, svc.description) : undefined,
      el('table', {},
        el('thead', {}, el('tr', {}, ['backend', 'weight', 'health', 'drain', 'connections', 'new conn/s', 'packets/s', 'bytes/s'].map((t, i) => el('th', { class: i === 1 || i > 4 ? 'num' : undefined }, t)))),
        el('tbody', {}, rows)));
  }));
}

function backendRows(svc, h, st) {
  const drains = data.drains.filter((d) => d.service === svc.name);
  const list = svc.backends.map((b) => ({ address: b.address, port: b.port ?? svc.port, weight: b.weight ?? 1 }));
  // A drained backend has left the desired state; it is shown while the dataplane still drains it.
  for (const d of drains) if (!list.some((b) => endpoint(b.address, b.port) === d.backend)) list.push({ text: d.backend, weight: 0 });
  return list.map((b) => {
    const key = b.text ?? endpoint(b.address, b.port);
    const hb = h?.backends.find((x) => endpoint(x.address, x.port) === key);
    const drain = drains.find((d) => d.backend === key);
    const sb = st?.backends.find((x) => endpoint(x.address, x.port) === key);
    const r = rates.get(`${svc.name}/${key}`) ?? {};
    const healthState = hb ? hb.state : b.text ? 'removed' : 'unchecked';
    const why = hb?.lastResult && !hb.lastResult.up ? hb.lastResult.reason : undefined;
    const conns = sb ? (sb.activeConnections !== undefined ? `${sb.activeConnections} active, ${sb.inactiveConnections ?? 0} inactive` : `${sb.counters.connections} total`) : '–';
    return el('tr', {
      'data-backend': key, 'data-health': healthState, 'data-weight': b.weight, 'data-drain': drain ? 'draining' : undefined,
      'data-drain-active': drain?.activeConnections, 'data-conn-rate': r.conns, 'data-byte-rate': r.bytes,
    },
      el('td', { class: 'mono' }, key),
      el('td', { class: 'num' }, b.weight),
      el('td', {}, el('span', { class: `pill ${healthState}` }, healthState), why ? el('span', { class: 'muted' }, ` ${why}`) : undefined,
        hb ? el('span', { class: 'muted' }, ` for ${since(hb.since)}`) : undefined),
      el('td', {}, drain ? drainCell(drain) : ''),
      el('td', {}, conns),
      el('td', { class: 'num' }, fmtRate(r.conns, '')),
      el('td', { class: 'num' }, fmtRate(r.packets, '')),
      el('td', { class: 'num' }, fmtRate(r.bytes, 'B')));
  });
}

function drainCell(d) {
  const start = Date.parse(d.startedAt), end = Date.parse(d.deadline);
  const part = end > start ? Math.min(1, Math.max(0, (Date.now() - start) / (end - start))) : 1;
  return el('span', {},
    el('progress', { max: 100, value: Math.round(part * 100), title: `deadline ${d.deadline}` }),
    ` draining, ${d.activeConnections} connection(s) left, deadline in ${Math.max(0, Math.round((end - Date.now()) / 1000))} s`);
}

function renderVrrp() {
  const list = data.status?.vrrp ?? [];
  const box = $('vrrp');
  if (list.length === 0) return box.replaceChildren(el('p', { class: 'muted' }, 'no VRRP instances on this node'));
  box.replaceChildren(el('table', {},
    el('thead', {}, el('tr', {}, ['instance', 'interface', 'VRID', 'state', 'priority', 'master', 'VIPs', 'last transition'].map((t) => el('th', {}, t)))),
    el('tbody', {}, list.map((i) => el('tr', { 'data-vrrp': i.name, 'data-state': i.state },
      el('td', {}, i.name),
      el('td', { class: 'mono' }, i.interface),
      el('td', { class: 'num' }, i.vrid),
      el('td', {}, el('span', { class: `pill ${i.state}` }, i.state), i.maintenance ? ' (maintenance)' : '', i.fault ? el('span', { class: 'muted' }, ` ${i.fault}`) : undefined),
      el('td', { class: 'num' }, i.priority === i.configuredPriority ? i.priority : `${i.priority} (configured ${i.configuredPriority})`),
      el('td', { class: 'mono' }, i.masterAddress ?? '–'),
      el('td', { class: 'mono' }, i.vips.join(', ')),
      el('td', {}, i.lastTransition ? `${i.lastTransition.from} → ${i.lastTransition.to} (${i.lastTransition.reason}) ${since(i.lastTransition.time)} ago` : '–'))))));
}

function renderEvents() {
  $('events').replaceChildren(...data.events.map((e) => el('li', { 'data-event': e.type },
    el('time', { datetime: e.time }, e.time ? new Date(e.time).toLocaleTimeString() : ''), ' ',
    el('span', { class: `pill ev ${e.type}` }, e.type), ' ',
    e.service ? el('span', { class: 'mono' }, `${e.service}: `) : undefined,
    e.message ?? '')));
}

function setLive(on) {
  const live = $('live');
  live.dataset.live = on ? 'on' : 'off';
  live.textContent = on ? 'live' : 'reconnecting';
}

function showError(text) {
  const box = $('error');
  box.hidden = text === undefined;
  box.textContent = text ?? '';
}

// ---- sign-in and start ----------------------------------------------------------------------

function signIn(message) {
  session?.abort();
  sessionStorage.removeItem(TOKEN_KEY);
  $('dashboard').hidden = true;
  $('signout').hidden = true;
  $('login').hidden = false;
  $('login-error').textContent = message ?? '';
  setLive(false);
  $('live').textContent = 'offline';
  $('token').focus();
}

async function start() {
  session?.abort();
  session = new AbortController();
  const s = session;
  data.last = undefined;
  data.events = [];
  data.servicesEtag = undefined;
  samples.clear();
  rates.clear();
  try {
    await Promise.all([readers.services(), readers.status(), readers.drains()]);
  } catch (e) {
    if (e instanceof Unauthorized) return signIn(token() ? 'the agent refused the token (401); give another' : undefined);
    if (!s.signal.aborted) showError(String(e.message ?? e));
    return;
  }
  $('login').hidden = true;
  $('dashboard').hidden = false;
  $('signout').hidden = token() === undefined;
  render();
  renderEvents();
  void stream();
  pollLoop();
}

$('login-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const input = $('token');
  const value = input.value.trim();
  // The field is emptied at once: the token is kept nowhere in the page, only in sessionStorage.
  input.value = '';
  if (!value) return;
  sessionStorage.setItem(TOKEN_KEY, value);
  $('login-error').textContent = '';
  void start();
});

$('signout').addEventListener('click', () => signIn('token forgotten'));

void start();
