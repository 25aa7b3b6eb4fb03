// charts.js — the time-series views: throughput and latency (unavailability
// shaded), log length and gle with trims, failure-detector timing, and CPU /
// RSS per process. Each is a tv_chart on the shared axis.

import { dom_el } from './dom.js';
import { fmt_sig, fmt_bytes } from './fmt.js';
import { tv_chart } from './timeview.js';
import { md_downsample, md_bisect } from './model.js';

export const CH_REPLICA_COLORS = ['#1f77b4', '#9467bd', '#17a2b8', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#2ca02c'];
const CH_MAX_POINTS = 3000;

function ch_color(i) {
  return CH_REPLICA_COLORS[i % CH_REPLICA_COLORS.length];
}

function ch_block(title, hint) {
  const plot = dom_el('div', { class: 'plot' });
  const block = dom_el('div', { class: 'chart-block' },
    dom_el('h3', null, title, hint ? dom_el('span', { class: 'hint', text: hint }) : null), plot);
  return { block, plot };
}

const secs = (xs) => xs.map((t) => t / 1e6);

function ch_value_ms(u, v) {
  return v === null || v === undefined ? '—' : `${fmt_sig(v)} ms`;
}

// Throughput (ok + failed completions per second, and timeouts) with the
// windows where nothing completed shaded.
function ch_throughput(model, blocks) {
  const s = model.series;
  const k = 1e6 / (s.bucket_us || 100000);
  const { block, plot } = ch_block('Throughput',
    'completed ops per second · red bands: no operation completed (unavailable)');
  blocks.push(block);
  return () => tv_chart(plot, {
    height: 170,
    shade: model.unavailable,
    data: [secs(s.t_us), s.ops_per_s.map(Number), (s.info || []).map((v) => v * k)],
    series: [
      { label: 'ok+fail ops/s', stroke: '#1f77b4', width: 1.5, fill: 'rgba(31,119,180,0.08)', value: (u, v) => (v === null ? '—' : fmt_sig(v)) },
      { label: 'timed out /s', stroke: '#d93a3a', width: 1, value: (u, v) => (v === null ? '—' : fmt_sig(v)) },
    ],
    axes: [{ label: 'ops/s', values: (u, sp) => sp.map((v) => fmt_sig(v)) }],
  });
}

function ch_latency(model, blocks) {
  const s = model.series;
  const ms = (col) => (col || []).map((v) => (typeof v === 'number' && v > 0 ? v / 1000 : null));
  const { block, plot } = ch_block('Latency', 'per 100 ms bucket (log scale) · red bands: unavailable');
  blocks.push(block);
  const series = [];
  const data = [secs(s.t_us)];
  if (s.latency_p50_us) { series.push({ label: 'p50', stroke: '#2ca02c', width: 1.5, value: ch_value_ms }); data.push(ms(s.latency_p50_us)); }
  if (s.latency_p99_us) { series.push({ label: 'p99', stroke: '#e58a00', width: 1.5, value: ch_value_ms }); data.push(ms(s.latency_p99_us)); }
  series.push({ label: 'max', stroke: '#b0b7c0', width: 1, dash: [4, 3], value: ch_value_ms });
  data.push(ms(s.latency_max_us));
  return () => tv_chart(plot, {
    height: 170,
    shade: model.unavailable,
    data,
    series,
    scales: { y: { distr: 3 } },
    axes: [{ label: 'ms', values: (u, sp) => sp.map((v) => (v === null ? '' : fmt_sig(v))) }],
  });
}

// One line per replica for a samples column; optional ticks (events) at the
// bottom of the plot in the replica's colour.
function ch_per_replica(model, blocks, title, hint, cols, unit, scale, ticks) {
  const { x, cols: all } = model.samples;
  const lines = [];
  const series = [];
  for (const [name, label, dash] of cols)
    model.replicas.forEach((r, i) => {
      lines.push(all[name][r].map((v) => (v === null ? null : v / scale)));
      series.push({ label: `${r} ${label}`, stroke: ch_color(i), width: 1.5, dash, value: (u, v) => (v === null ? '—' : `${fmt_sig(v)}${unit ? ` ${unit}` : ''}`) });
    });
  const data = md_downsample(secs(x), lines, CH_MAX_POINTS);
  const { block, plot } = ch_block(title, hint);
  blocks.push(block);
  const tickRows = ticks ? model.replicas.map((r) => ticks.filter((e) => e.node === r).map((e) => e.t_us)) : null;
  return () => tv_chart(plot, {
    height: 170, data, series,
    axes: [{ label: unit || '', values: (u, sp) => sp.map((v) => fmt_sig(v)) }],
    drawOver: tickRows ? (u) => ch_ticks(u, tickRows) : null,
  });
}

// Small marks along the bottom edge, in each replica's colour.
function ch_ticks(u, rows) {
  const { ctx, bbox } = u;
  const px = uPlot.pxRatio;
  rows.forEach((ts, i) => {
    ctx.fillStyle = ch_color(i);
    ctx.globalAlpha = 0.7;
    const y = bbox.top + bbox.height - 6 * px;
    let last = -1;
    const a = md_bisect(ts, u.scales.x.min * 1e6 - 1);
    for (let j = Math.max(0, a); j < ts.length && ts[j] <= u.scales.x.max * 1e6; j++) {
      const x = Math.round(u.valToPos(ts[j] / 1e6, 'x', true));
      if (x === last) continue;
      last = x;
      ctx.fillRect(x, y, Math.max(1, px), 6 * px);
    }
  });
  ctx.globalAlpha = 1;
}

function ch_resources(model, blocks) {
  const procs = Object.keys(model.resources).filter((p) => model.resources[p] && Array.isArray(model.resources[p].t_us));
  if (!procs.length) {
    blocks.push(dom_el('div', { class: 'chart-block' }, dom_el('h3', null, 'CPU and memory'),
      dom_el('p', { class: 'empty', text: 'No CPU/RSS samples in this run (the simulator runs the whole cluster in one process; the DPDK backend samples each process).' })));
    return [];
  }
  const x = model.resources[procs[0]].t_us;
  const align = (p, col) => {
    const r = model.resources[p];
    return x.map((t) => { const i = md_bisect(r.t_us, t); return i >= 0 && typeof r[col][i] === 'number' ? r[col][i] : null; });
  };
  const make = (title, col, scale, unit, fmtv) => {
    const data = md_downsample(secs(x), procs.map((p) => align(p, col).map((v) => (v === null ? null : v / scale))), CH_MAX_POINTS);
    const { block, plot } = ch_block(title, 'per process');
    blocks.push(block);
    return () => tv_chart(plot, {
      height: 150, data,
      series: procs.map((p, i) => ({ label: p, stroke: ch_color(i), width: 1.5, value: (u, v) => (v === null ? '—' : fmtv(v)) })),
      axes: [{ label: unit, values: (u, sp) => sp.map((v) => fmt_sig(v)) }],
    });
  };
  return [make('CPU', 'cpu_pct', 1, '%', (v) => `${fmt_sig(v)} %`),
    make('Memory (RSS)', 'rss_bytes', 1024 * 1024, 'MiB', (v) => fmt_bytes(v * 1024 * 1024))];
}

// Returns {blocks: elements to place, draw: fn to create the charts once the
// blocks are in the document (uPlot measures its container)}.
export function ch_build(model) {
  const blocks = [];
  const makers = [];
  if (model.series && Array.isArray(model.series.ops_per_s)) {
    makers.push(ch_throughput(model, blocks));
    makers.push(ch_latency(model, blocks));
  }
  if (model.samples.x.length) {
    makers.push(ch_per_replica(model, blocks, 'Log length', 'entries held per replica · ticks: trims (compaction to gle)',
      [['log_entries', 'log', undefined]], '', 1, model.trims));
    makers.push(ch_per_replica(model, blocks, 'Global last executed (gle)', 'the index every replica has executed; logs trim up to it',
      [['gle', 'gle', undefined]], '', 1, null));
    makers.push(ch_per_replica(model, blocks, 'Failure detector', 'solid: commit (heartbeat) interval · dashed: election timeout',
      [['heartbeat_us', 'commit interval', undefined], ['election_timeout_us', 'election timeout', [5, 4]]], 'ms', 1000, null));
  }
  makers.push(...ch_resources(model, blocks));
  return { blocks, draw: () => makers.forEach((m) => m()) };
}
