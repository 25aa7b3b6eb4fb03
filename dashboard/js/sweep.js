// sweep.js — a sweep (sweep.json): parameter pairs against a metric as a
// heatmap; each cell links to its runs' reports (one per seed).

import { dom_el, dom_link, dom_clear, dom_section } from './dom.js';
import { fmt_sig, fmt_value, fmt_num } from './fmt.js';

// Metric: label, and whether more is worse (red) or better (green).
const SW_METRICS = [
  ['max_unavailability_ms', 'longest unavailability (ms)', 'worse'],
  ['leader_changes', 'leader changes', 'worse'],
  ['throughput_ops_per_s', 'throughput before faults (ops/s)', 'better'],
  ['throughput_ratio', 'throughput during / before faults', 'better'],
  ['failed', 'runs failed (share)', 'worse'],
];

const sw_state = { x: null, y: null, metric: 'max_unavailability_ms' };

function sw_key(v) {
  return typeof v === 'string' ? v : JSON.stringify(v);
}

function sw_metric(row, m) {
  if (m === 'failed') return row.verdict === 'pass' ? 0 : 1;
  const v = row[m];
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

// Light green (good) to deep red (bad), by where v sits in [lo, hi].
function sw_color(v, lo, hi, dir) {
  if (v === null) return '#eef0f3';
  let f = hi > lo ? (v - lo) / (hi - lo) : 0.5;
  if (dir === 'better') f = 1 - f;
  const c0 = [222, 243, 226], c1 = [214, 62, 62];
  const c = c0.map((a, i) => Math.round(a + (c1[i] - a) * f));
  return `rgb(${c[0]}, ${c[1]}, ${c[2]})`;
}

function sw_cell_runs(rows) {
  return dom_el('div', { class: 'seeds' }, ...rows.map((r) => {
    const dir = String(r.run_dir || '').split('/').filter(Boolean).pop() || '';
    const a = dom_link(`${dir}/report.html`, `seed ${r.seed}`);
    a.setAttribute('class', `seed ${r.verdict === 'pass' ? 'pass' : 'fail'}`);
    a.setAttribute('title', `${String(r.verdict)} · ${String(r.run_dir)}`);
    return a;
  }));
}

function sw_heatmap(sweep, box) {
  const rows = sweep.rows.filter((r) => r && typeof r === 'object' && r.params && typeof r.params === 'object');
  const params = sweep.params.map(String);
  const values = (p) => [...new Map(rows.map((r) => [sw_key(r.params[p]), r.params[p]])).keys()];
  const xs = sw_state.x ? values(sw_state.x) : [''];
  const ys = sw_state.y ? values(sw_state.y) : [''];
  const [, label, dir] = SW_METRICS.find((m) => m[0] === sw_state.metric);
  const cells = new Map();
  for (const r of rows) {
    const k = `${sw_state.x ? sw_key(r.params[sw_state.x]) : ''}\u0000${sw_state.y ? sw_key(r.params[sw_state.y]) : ''}`;
    if (!cells.has(k)) cells.set(k, []);
    cells.get(k).push(r);
  }
  const mean = (rs) => {
    const vs = rs.map((r) => sw_metric(r, sw_state.metric)).filter((v) => v !== null);
    return vs.length ? vs.reduce((a, b) => a + b, 0) / vs.length : null;
  };
  const means = [...cells.values()].map(mean).filter((v) => v !== null);
  const lo = Math.min(...means), hi = Math.max(...means);
  const head = dom_el('tr', null, dom_el('th', { class: 'corner', text: `${sw_state.y || ''} ↓  ${sw_state.x || ''} →` }),
    ...xs.map((x) => dom_el('th', { text: x })));
  const body = ys.map((y) => dom_el('tr', null, dom_el('th', { text: y }), ...xs.map((x) => {
    const rs = cells.get(`${x}\u0000${y}`) || [];
    const m = mean(rs);
    const failed = rs.filter((r) => r.verdict !== 'pass').length;
    return dom_el('td', { class: 'cell', style: { background: sw_color(m, lo, hi, dir) },
      title: `${label}: ${m === null ? '—' : fmt_sig(m)} (mean of ${rs.length} runs; ${failed} failed)` },
    dom_el('div', { class: 'cell-value', text: m === null ? '—' : fmt_sig(m) }),
    dom_el('div', { class: 'cell-sub', text: `${rs.length - failed}/${rs.length} pass` }),
    sw_cell_runs(rs));
  })));
  dom_clear(box);
  const others = params.filter((p) => p !== sw_state.x && p !== sw_state.y);
  box.append(dom_el('table', { class: 'heatmap' }, dom_el('thead', null, head), dom_el('tbody', null, ...body)),
    dom_el('p', { class: 'hint-block', text: `Cell colour: mean ${label} over the cell's runs${others.length ? ` (and over ${others.join(', ')})` : ''}; ${dir === 'worse' ? 'redder is worse' : 'redder is lower'}. Each seed links to that run's report.` }));
}

function sw_select(label, options, current, onChange) {
  const sel = dom_el('select', { 'aria-label': label },
    ...options.map(([v, t]) => dom_el('option', { value: v, text: t, selected: v === current })));
  sel.addEventListener('change', () => onChange(sel.value));
  return dom_el('label', { class: 'ctl' }, `${label} `, sel);
}

function sw_table(sweep) {
  const params = sweep.params.map(String);
  const cols = ['max_unavailability_ms', 'leader_changes', 'throughput_ops_per_s', 'throughput_ratio'];
  return dom_el('table', { class: 'runs' },
    dom_el('thead', null, dom_el('tr', null, ...[...params, 'seed', 'verdict', ...cols, 'run'].map((h) => dom_el('th', { text: h })))),
    dom_el('tbody', null, ...sweep.rows.filter((r) => r && typeof r === 'object').map((r) => {
      const dir = String(r.run_dir || '').split('/').filter(Boolean).pop() || '';
      return dom_el('tr', { class: `row-${r.verdict === 'pass' ? 'pass' : 'fail'}` },
        ...params.map((p) => dom_el('td', { text: fmt_value(r.params ? r.params[p] : null) })),
        dom_el('td', { class: 'num', text: fmt_value(r.seed) }),
        dom_el('td', null, dom_el('span', { class: `badge ${r.verdict === 'pass' ? 'pass' : 'fail'}`, text: String(r.verdict).toUpperCase() })),
        ...cols.map((c) => dom_el('td', { class: 'num', text: typeof r[c] === 'number' ? (Number.isInteger(r[c]) ? fmt_num(r[c]) : fmt_sig(r[c])) : '—' })),
        dom_el('td', null, dom_link(`${dir}/report.html`, dir)));
    })));
}

export function sw_render(sweep, root) {
  const params = sweep.params.map(String);
  if (!sw_state.x || !params.includes(sw_state.x)) sw_state.x = params[0] || null;
  if (sw_state.y && !params.includes(sw_state.y)) sw_state.y = null;
  if (!sw_state.y && params.length > 1) sw_state.y = params[1];
  const box = dom_el('div', { class: 'heatmap-box' });
  const redraw = () => sw_heatmap(sweep, box);
  const opts = params.map((p) => [p, p]);
  const controls = dom_el('div', { class: 'controls' },
    sw_select('columns', opts, sw_state.x, (v) => { sw_state.x = v; redraw(); }),
    sw_select('rows', [['', '—'], ...opts], sw_state.y || '', (v) => { sw_state.y = v || null; redraw(); }),
    sw_select('colour', SW_METRICS.map(([k, l]) => [k, l]), sw_state.metric, (v) => { sw_state.metric = v; redraw(); }));
  redraw();
  const pass = sweep.rows.filter((r) => r && r.verdict === 'pass').length;
  const verdict = pass === sweep.rows.length ? 'pass' : 'fail';
  root.append(
    dom_el('header', { class: `top ${verdict}` },
      dom_el('div', { class: 'verdict-badge', text: `${pass}/${sweep.rows.length} PASS` }),
      dom_el('div', { class: 'title' },
        dom_el('h1', { text: `Sweep: ${String(sweep.scenario)}` }),
        dom_el('div', { class: 'meta', text: `${fmt_num(sweep.rows.length)} runs · parameters ${params.join(', ')} · ${fmt_num(sweep.seeds)} seeds each` }))),
    dom_section('Heatmap', 'parameters against a metric; click a seed to open its run', controls, box),
    dom_section('All runs', null, dom_el('div', { class: 'table-scroll' }, sw_table(sweep))));
}
