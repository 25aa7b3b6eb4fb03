// lin.js — a non-linearizable history, laid out as Porcupine does: one row per
// client process, one bar per operation from invocation to response, events
// placed by their order in time (so short and long operations are equally
// legible) with the real times underneath.

import { dom_el, dom_svg, dom_section } from './dom.js';
import { fmt_t, fmt_clip, fmt_num } from './fmt.js';
import { tv_set_range, tv_set_t } from './timeview.js';

const LZ_MAX_OPS = 300;
const ROW = 34, LEFT = 86, SLOT_MAX = 90, SLOT_MIN = 26;

function lz_val(v) {
  if (v === null || v === undefined) return 'nil';
  if (Array.isArray(v)) return v.map(lz_val).join('→');
  return fmt_clip(typeof v === 'string' ? v : JSON.stringify(v), 14);
}

// Invoke/completion pairs per process, in time order.
export function lz_pairs(ops) {
  const open = new Map();
  const pairs = [];
  const sorted = ops.filter((o) => o && typeof o === 'object').slice()
    .sort((a, b) => Number(a.time) - Number(b.time));
  for (const o of sorted) {
    const p = String(o.process);
    if (o.type === 'invoke') {
      const op = { process: p, f: String(o.f), key: String(o.key), arg: o.value, start: Number(o.time), end: null, type: 'open', result: undefined };
      open.set(p, op);
      pairs.push(op);
    } else if (open.has(p)) {
      const op = open.get(p);
      op.end = Number(o.time);
      op.type = String(o.type);
      op.result = o.value;
      open.delete(p);
    }
  }
  return pairs;
}

function lz_label(op) {
  if (op.f === 'get') return `get → ${op.type === 'ok' ? lz_val(op.result) : op.type}`;
  if (op.f === 'cas') return `cas ${lz_val(op.arg)}${op.type === 'fail' ? ' ✗' : ''}`;
  if (op.f === 'del') return 'del';
  return `${op.f} ${lz_val(op.arg)}`;
}

function lz_svg(pairs) {
  const times = [...new Set(pairs.flatMap((p) => (p.end === null ? [p.start] : [p.start, p.end])))].sort((a, b) => a - b);
  const slot = new Map(times.map((t, i) => [t, i]));
  const procs = [...new Set(pairs.map((p) => p.process))].sort((a, b) => Number(a) - Number(b) || a.localeCompare(b));
  const step = Math.max(SLOT_MIN, Math.min(SLOT_MAX, 900 / Math.max(1, times.length)));
  const width = LEFT + (times.length + 1) * step + 20;
  const height = procs.length * ROW + 60;
  const x = (t) => LEFT + (t === null ? times.length : slot.get(t)) * step + step / 2;
  const svg = dom_svg('svg', { viewBox: `0 0 ${width} ${height}`, width, height, class: 'lin-svg' });
  procs.forEach((p, i) => {
    const y = i * ROW + 8;
    svg.appendChild(dom_svg('text', { x: 8, y: y + ROW / 2, class: 'lin-proc', 'dominant-baseline': 'middle', text: `process ${p}` }));
    svg.appendChild(dom_svg('line', { x1: LEFT, y1: y + ROW - 2, x2: width - 10, y2: y + ROW - 2, class: 'lin-grid' }));
  });
  for (const op of pairs) {
    const y = procs.indexOf(op.process) * ROW + 10;
    const x0 = x(op.start) - step * 0.35, x1 = x(op.end) + step * 0.35;
    const cls = op.type === 'ok' ? 'lin-ok' : op.type === 'fail' ? 'lin-fail' : 'lin-open';
    const g = dom_svg('g', { class: `lin-op ${cls}` },
      dom_svg('rect', { x: x0, y, width: Math.max(8, x1 - x0), height: ROW - 16, rx: 4 }),
      dom_svg('text', { x: x0 + 5, y: y + (ROW - 16) / 2, 'dominant-baseline': 'middle', text: lz_label(op) }),
      dom_svg('title', { text: `process ${op.process}: ${op.f}(${op.key}${op.arg !== undefined && op.arg !== null ? `, ${JSON.stringify(op.arg)}` : ''}) → ${op.type}${op.result !== undefined && op.result !== null ? ` ${JSON.stringify(op.result)}` : ''}\ninvoked ${fmt_t(op.start)}, ${op.end === null ? 'never completed' : `completed ${fmt_t(op.end)}`}` }));
    svg.appendChild(g);
  }
  // Real times under their slots (every slot when they fit, else some).
  const axisY = procs.length * ROW + 22;
  const every = Math.ceil(70 / step);
  times.forEach((t, i) => {
    svg.appendChild(dom_svg('line', { x1: x(t), y1: 6, x2: x(t), y2: axisY - 10, class: 'lin-tick' }));
    if (i % every === 0)
      svg.appendChild(dom_svg('text', { x: x(t), y: axisY + (i / every % 2) * 14, 'text-anchor': 'middle', class: 'lin-time', text: fmt_t(t) }));
  });
  return svg;
}

// null when the history is linearizable (or was not checked).
export function lz_section(run) {
  const lin = run.checks && run.checks.linearizable;
  if (!lin || lin.verdict !== 'fail') return null;
  const pairs = lz_pairs(Array.isArray(lin.ops) ? lin.ops : []);
  const shown = pairs.slice(0, LZ_MAX_OPS);
  const intro = dom_el('p', null,
    `Key “${String(lin.key)}”: no order of these ${fmt_num(pairs.length)} operations, each taking effect at one instant inside its bar, explains what they returned`,
    lin.minimal ? ' — and every one of them is needed to show it (minimal witness).' : '.');
  const reason = dom_el('p', { class: 'hint-block', text: String(lin.reason || '') });
  const starts = pairs.map((p) => p.start), ends = pairs.map((p) => (p.end === null ? p.start : p.end));
  const jump = dom_el('button', { type: 'button', class: 'btn', text: 'show on the timeline' });
  jump.addEventListener('click', () => {
    const a = Math.min(...starts), b = Math.max(...ends);
    const pad = Math.max(50000, (b - a) * 0.1);
    tv_set_range(a - pad, b + pad);
    tv_set_t(a);
    const lanes = document.getElementById('timeline');
    if (lanes) lanes.scrollIntoView({ behavior: 'smooth', block: 'start' });
  });
  const note = pairs.length > LZ_MAX_OPS ? dom_el('p', { class: 'hint-block', text: `Showing the first ${LZ_MAX_OPS} of ${pairs.length} operations.` }) : null;
  const legend = dom_el('div', { class: 'legend-row' },
    dom_el('span', { class: 'key' }, dom_el('span', { class: 'swatch lin-ok' }), 'completed ok'),
    dom_el('span', { class: 'key' }, dom_el('span', { class: 'swatch lin-fail' }), 'failed (no effect)'),
    dom_el('span', { class: 'key' }, dom_el('span', { class: 'swatch lin-open' }), 'unknown outcome (timed out)'),
    dom_el('span', { class: 'hint', text: 'bars are placed by event order; times below' }));
  return dom_section('Not linearizable', 'the offending operations on their key', intro, reason,
    dom_el('div', { class: 'lin-actions' }, jump), legend, dom_el('div', { class: 'lin-scroll' }, lz_svg(shown)), note);
}
