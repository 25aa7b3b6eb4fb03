// model.js — run.json turned into what the views draw, computed once per load.
//
// Leader lanes come from the replicas' role events (exact times) with crash
// and pause faults laid over them; the 100 ms status samples are only a
// fallback for a backend that records no role events. Links come from the
// fault intervals: each carries the directed links it impairs.

import { fmt_us, fmt_sig } from './fmt.js';

export const MD_STATES = ['leader', 'follower', 'candidate', 'down', 'paused'];
const CUT_KINDS = new Set(['cut', 'partition', 'link-down']);
const LINK_KINDS = new Set(['cut', 'partition', 'link-down', 'loss', 'delay', 'duplicate', 'reorder']);
const PROCESS_STATE = { crash: 'down', pause: 'paused', 'gc-pause': 'paused' };
const MAX_FAULT_ROWS = 6;

// 'run', 'sweep' or null for anything else.
export function md_kind(data) {
  if (!data || typeof data !== 'object') return null;
  if (Array.isArray(data.rows) && Array.isArray(data.params)) return 'sweep';
  if (data.name !== undefined && (data.samples || data.events || data.config || data.scenario)) return 'run';
  return null;
}

function num(v, dflt) {
  return typeof v === 'number' && Number.isFinite(v) ? v : dflt;
}

function arr(v) {
  return Array.isArray(v) ? v : [];
}

function str(v) {
  return v === null || v === undefined ? '' : String(v);
}

// Largest index i with a[i] <= t (a sorted), or -1.
export function md_bisect(a, t) {
  let lo = 0, hi = a.length - 1, ans = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (a[mid] <= t) { ans = mid; lo = mid + 1; } else hi = mid - 1;
  }
  return ans;
}

function md_duration(run) {
  const m = run.metrics || {};
  let d = num(m.duration_us, 0);
  if (!d && run.series) d = arr(run.series.t_us).slice(-1)[0] || 0;
  for (const s of Object.values(run.samples || {})) d = Math.max(d, arr(s && s.t_us).slice(-1)[0] || 0);
  if (!d && run.config) d = num(run.config.duration_ms, 0) * 1000;
  return Math.max(d, 1000);
}

function md_nodes(run) {
  const replicas = arr(run.nodes).filter((n) => n && n.kind === 'replica').map((n) => str(n.name));
  const cfg = run.config || run.scenario || {};
  if (!replicas.length) {
    const n = num(cfg.cluster && cfg.cluster.replicas, Object.keys(run.samples || {}).length || 3);
    for (let i = 1; i <= Math.min(n, 64); i++) replicas.push(`r${i}`);
  }
  const clients = [];
  const nc = num(cfg.workload && cfg.workload.nodes, 1);
  for (let i = 1; i <= Math.min(nc, 64); i++) clients.push(`c${i}`);
  for (const f of arr(run.faults))
    for (const l of arr(f && f.links))
      for (const n of arr(l)) {
        const name = str(n);
        if (!replicas.includes(name) && !clients.includes(name) && clients.length < 64) clients.push(name);
      }
  return { replicas, clients };
}

// ---------- faults ----------

function md_pct(p) {
  const v = num(p, 0) * 100;
  return `${Number.isInteger(Math.round(v * 10) / 10) ? Math.round(v) : fmt_sig(v)}%`;
}

// The fault's parameters as "name: value" lines (units spelled out).
function md_fault_params(f) {
  const out = [];
  const skip = new Set(['links', 'kind', 'start_us', 'end_us', 'do', 'at_ms']);
  for (const [k, v] of Object.entries(f)) {
    if (skip.has(k)) continue;
    if (k === 'probability' || k === 'correlation') out.push(`${k}: ${md_pct(v)}`);
    else if (k.endsWith('_us') && typeof v === 'number') out.push(`${k.slice(0, -3)}: ${fmt_us(v)}`);
    else out.push(`${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`);
  }
  return out;
}

// Groups of a partition: nodes that still reach each other (neither direction cut).
function md_partition_groups(links) {
  const cut = new Set(links.map(([a, b]) => `${a}>${b}`));
  const nodes = [...new Set(links.flat())];
  const group = new Map();
  let g = 0;
  for (const n of nodes) {
    if (group.has(n)) continue;
    const stack = [n];
    group.set(n, g);
    while (stack.length) {
      const x = stack.pop();
      for (const y of nodes)
        if (!group.has(y) && !cut.has(`${x}>${y}`) && !cut.has(`${y}>${x}`)) { group.set(y, g); stack.push(y); }
    }
    g++;
  }
  const groups = [];
  for (const [n, i] of group) (groups[i] = groups[i] || []).push(n);
  return groups.map((x) => x.sort().join(' ')).join(' | ');
}

// "r2 ↔ r3", "r1 → r2", "r3 ↔ all", "r1 | r2 r3" for the links of a fault.
function md_link_text(kind, links, allNodes) {
  if (!links.length) return '';
  if (kind === 'partition') return md_partition_groups(links);
  const has = new Set(links.map(([a, b]) => `${a}>${b}`));
  if (links.length <= 2) {
    const [a, b] = links[0];
    return has.has(`${b}>${a}`) ? `${a} ↔ ${b}` : links.length === 1 ? `${a} → ${b}` : `${links.length} links`;
  }
  for (const hub of new Set(links.flat())) {
    if (!links.every(([a, b]) => a === hub || b === hub)) continue;
    const peers = [...new Set(links.flat())].filter((n) => n !== hub);
    const both = peers.every((p) => has.has(`${hub}>${p}`) && has.has(`${p}>${hub}`));
    const others = allNodes.filter((n) => n !== hub);
    const who = peers.length === others.length ? 'all' : peers.sort().join(', ');
    if (both) return `${hub} ↔ ${who}`;
    if (peers.every((p) => has.has(`${hub}>${p}`))) return `${hub} → ${who}`;
    if (peers.every((p) => has.has(`${p}>${hub}`))) return `${who} → ${hub}`;
  }
  return `${links.length} links`;
}

function md_fault_label(kind, f, linkText) {
  const p = num(f.probability, null);
  let what = kind;
  if (p !== null) what += ` ${md_pct(p)}`;
  if (kind === 'delay') what += ` ${fmt_us(num(f.delay_us, 0))}${f.jitter_us ? ` ±${fmt_us(f.jitter_us)}` : ''}`;
  if (kind === 'gc-pause' && f.pause_us) what += ` ${fmt_us(f.pause_us)}`;
  const target = linkText || str(f.node);
  return target ? `${what} ${target}` : what;
}

function md_faults(run, allNodes, duration) {
  const out = [];
  arr(run.faults).forEach((f, i) => {
    if (!f || typeof f !== 'object') return;
    const kind = str(f.kind || f.do || 'fault');
    const links = arr(f.links).filter((l) => Array.isArray(l) && l.length === 2).map((l) => [str(l[0]), str(l[1])]);
    const start = num(f.start_us, 0);
    const end = Math.max(start, num(f.end_us, duration));
    const cls = CUT_KINDS.has(kind) ? 'cut' : LINK_KINDS.has(kind) ? 'impair' : PROCESS_STATE[kind] ? 'process' : 'other';
    const linkText = md_link_text(kind, links, allNodes);
    const label = md_fault_label(kind, f, linkText);
    const nodes = new Set(links.flat());
    if (f.node) nodes.add(str(f.node));
    const params = [`${fmt_us(start)} → ${fmt_us(end)} (${fmt_us(end - start)})`, ...md_fault_params(f)];
    if (links.length) params.push(`links: ${links.map(([a, b]) => `${a}→${b}`).join(', ')}`);
    out.push({ id: i, kind, cls, start, end, links, nodes, node: str(f.node), label, params, row: 0 });
  });
  out.sort((a, b) => a.start - b.start || a.id - b.id);
  // Greedy rows: a fault goes in the first row free at its start.
  const rowEnd = [];
  for (const f of out) {
    let r = rowEnd.findIndex((e) => e <= f.start);
    if (r < 0) r = rowEnd.length < MAX_FAULT_ROWS ? rowEnd.length : MAX_FAULT_ROWS - 1;
    rowEnd[r] = Math.max(rowEnd[r] || 0, f.end);
    f.row = r;
  }
  return { faults: out, rows: Math.max(1, rowEnd.length) };
}

// ---------- lanes ----------

// Lay [start, end) with state over sorted, contiguous segments.
function md_overlay(segs, start, end, state, ballot) {
  const out = [];
  for (const s of segs) {
    if (s.end <= start || s.start >= end) { out.push(s); continue; }
    if (s.start < start) out.push({ ...s, end: start });
    if (s.end > end) out.push({ ...s, start: end });
  }
  out.push({ start, end, state, ballot });
  return out.sort((a, b) => a.start - b.start);
}

function md_lanes_from_events(run, replicas, faults, duration) {
  const roleEvents = new Map(replicas.map((r) => [r, []]));
  for (const e of arr(run.events))
    if (e && e.kind === 'role' && roleEvents.has(e.node)) roleEvents.get(e.node).push(e);
  const lanes = {};
  for (const r of replicas) {
    const evs = roleEvents.get(r).sort((a, b) => num(a.t_us, 0) - num(b.t_us, 0));
    // A restarted replica comes back as a follower until its events say otherwise.
    const restarts = faults.filter((f) => f.kind === 'crash' && f.node === r).map((f) => f.end);
    const changes = evs.map((e) => ({ t: num(e.t_us, 0), state: str(e.role), ballot: str(e.ballot) }));
    for (const t of restarts) changes.push({ t, state: 'follower', ballot: '' });
    changes.sort((a, b) => a.t - b.t);
    let segs = [];
    let cur = { start: 0, state: evs.length ? str(evs[0].from) || 'follower' : 'follower', ballot: '' };
    for (const c of changes) {
      if (c.t > cur.start) segs.push({ ...cur, end: c.t });
      cur = { start: c.t, state: c.state, ballot: c.ballot };
    }
    if (duration > cur.start) segs.push({ ...cur, end: duration });
    for (const f of faults)
      if (f.cls === 'process' && f.node === r) segs = md_overlay(segs, f.start, f.end, PROCESS_STATE[f.kind], '');
    lanes[r] = segs.filter((s) => s.end > s.start);
  }
  return lanes;
}

function md_ballot_text(b) {
  const v = num(b, 0);
  return v ? `${Math.floor(v / 256)}.${(v % 256) + 1}` : '';
}

// Run-length segments from the status samples (state column).
function md_lanes_from_samples(run, replicas, duration) {
  const lanes = {};
  for (const r of replicas) {
    const s = (run.samples || {})[r] || {};
    const t = arr(s.t_us), st = arr(s.state), bal = arr(s.ballot);
    const segs = [];
    for (let i = 0; i < t.length; i++) {
      const state = str(st[i]), ballot = md_ballot_text(bal[i]);
      const last = segs[segs.length - 1];
      if (last && last.state === state && last.ballot === ballot) continue;
      if (last) last.end = t[i];
      segs.push({ start: t[i], end: duration, state, ballot });
    }
    lanes[r] = segs;
  }
  return lanes;
}

// ---------- samples and series ----------

// Resample replica r's column onto times x (the value at or before each time).
function md_column_on(x, t, col) {
  if (t.length === x.length && t[0] === x[0] && t[t.length - 1] === x[x.length - 1])
    return col.map((v) => (typeof v === 'number' ? v : null));
  return x.map((tx) => {
    const i = md_bisect(t, tx);
    return i >= 0 && typeof col[i] === 'number' ? col[i] : null;
  });
}

// Keep long series light: at most maxPts points, each bucket's maximum (so a
// spike survives), nulls where a bucket has none.
export function md_downsample(x, ys, maxPts) {
  if (x.length <= maxPts) return [x, ...ys];
  const k = Math.ceil(x.length / maxPts);
  const nx = [], nys = ys.map(() => []);
  for (let i = 0; i < x.length; i += k) {
    nx.push(x[i]);
    ys.forEach((y, j) => {
      let m = null;
      for (let q = i; q < Math.min(i + k, x.length); q++) if (y[q] !== null && (m === null || y[q] > m)) m = y[q];
      nys[j].push(m);
    });
  }
  return [nx, ...nys];
}

// {x: sample times, cols: {name: {replica: column}}} for the replica charts.
function md_samples(run, replicas) {
  const samples = run.samples || {};
  const first = replicas.map((r) => samples[r]).find((s) => s && Array.isArray(s.t_us));
  const x = first ? first.t_us.filter((v) => typeof v === 'number') : [];
  const names = ['log_entries', 'gle', 'last_executed', 'heartbeat_us', 'election_timeout_us'];
  const cols = {};
  for (const n of names) {
    cols[n] = {};
    for (const r of replicas) {
      const s = samples[r];
      cols[n][r] = s && Array.isArray(s[n]) && Array.isArray(s.t_us) ? md_column_on(x, s.t_us, s[n]) : x.map(() => null);
    }
  }
  return { x, cols };
}

function md_events(run) {
  const evs = arr(run.events).filter((e) => e && typeof e === 'object');
  evs.forEach((e, i) => { e._i = i; });
  return evs.sort((a, b) => num(a.t_us, 0) - num(b.t_us, 0) || a._i - b._i);
}

export function md_build(run) {
  const duration = md_duration(run);
  const { replicas, clients } = md_nodes(run);
  const all = [...replicas, ...clients];
  const { faults, rows } = md_faults(run, all, duration);
  const events = md_events(run);
  const hasRoles = events.some((e) => e.kind === 'role');
  const lanes = hasRoles || !run.samples
    ? md_lanes_from_events(run, replicas, faults, duration)
    : md_lanes_from_samples(run, replicas, duration);
  const elections = events.filter((e) => e.kind === 'election_start' && replicas.includes(e.node));
  const trims = events.filter((e) => e.kind === 'trim');
  const series = run.series && Array.isArray(run.series.t_us) ? run.series : null;
  const unavailable = series ? arr(series.unavailable_us).filter((w) => Array.isArray(w) && w.length === 2) : [];
  return {
    run, duration, replicas, clients, nodes: all, faults, faultRows: rows, lanes, elections, trims, events,
    series, unavailable, samples: md_samples(run, replicas), resources: run.resources || {},
  };
}

// ---------- the instant under the scrubber ----------

export function md_lane_at(segs, t) {
  let lo = 0, hi = segs.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (segs[mid].end <= t) lo = mid + 1;
    else if (segs[mid].start > t) hi = mid - 1;
    else return segs[mid];
  }
  return null;
}

// Roles and directed link states at time t: links maps "a>b" to
// {cls: 'cut'|'impair', faults: [...]}.
export function md_state_at(model, t) {
  const roles = {};
  for (const r of model.replicas) roles[r] = md_lane_at(model.lanes[r], t) || { state: 'follower', ballot: '' };
  const active = model.faults.filter((f) => f.start <= t && t < f.end);
  const links = new Map();
  for (const f of active) {
    if (f.cls !== 'cut' && f.cls !== 'impair') continue;
    for (const [a, b] of f.links) {
      const k = `${a}>${b}`;
      const cur = links.get(k) || { cls: 'impair', faults: [] };
      if (f.cls === 'cut') cur.cls = 'cut';
      cur.faults.push(f);
      links.set(k, cur);
    }
  }
  return { roles, links, active };
}

// Which replicas a replica can exchange messages with both ways (itself
// included), ignoring impairments that only slow or thin traffic.
export function md_reach(model, st) {
  const out = {};
  for (const a of model.replicas) {
    let n = 0;
    for (const b of model.replicas) {
      const up = (x) => ['down', 'paused'].indexOf(st.roles[x].state) < 0;
      if (a === b) { n += up(a) ? 1 : 0; continue; }
      const ab = st.links.get(`${a}>${b}`), ba = st.links.get(`${b}>${a}`);
      if (up(a) && up(b) && !(ab && ab.cls === 'cut') && !(ba && ba.cls === 'cut')) n++;
    }
    out[a] = n;
  }
  return out;
}
