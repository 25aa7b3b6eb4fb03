// lanes.js — who led when: one lane per replica coloured by role, ballots on
// the leader spans, election starts ticked, and the fault intervals beneath
// (with a stripe on every lane a fault touches). Drawn on a uPlot canvas so
// it shares the time axis, zoom and scrubber with the other charts.

import { dom_el, dom_tip } from './dom.js';
import { fmt_us, fmt_t } from './fmt.js';
import { tv_chart } from './timeview.js';
import { md_lane_at } from './model.js';

export const LN_STATE_COLORS = {
  leader: '#1b8a3a', follower: '#c9d6e3', candidate: '#f0a030', down: '#4a4a4a', paused: '#8e6bbf',
};
export const LN_FAULT_COLORS = { cut: '#d93a3a', impair: '#e58a00', process: '#6d5a8c', other: '#7a8793' };

const LANE_H = 30, LANE_GAP = 6, FAULT_H = 18, FAULT_GAP = 3, SEP = 14;

function ln_layout(model) {
  const lanes = model.replicas.map((name, i) => ({ name, top: i * (LANE_H + LANE_GAP), h: LANE_H }));
  const faultTop = model.replicas.length * (LANE_H + LANE_GAP) + SEP;
  const rows = [];
  for (let r = 0; r < (model.faults.length ? model.faultRows : 0); r++)
    rows.push({ top: faultTop + r * (FAULT_H + FAULT_GAP), h: FAULT_H });
  const height = (rows.length ? rows[rows.length - 1].top + FAULT_H : faultTop - SEP) + 4;
  return { lanes, rows, faultTop, height };
}

// x in canvas pixels for a time in µs, clamped to the plot.
function ln_x(u, t) {
  const x = u.valToPos(t / 1e6, 'x', true);
  return Math.max(u.bbox.left, Math.min(u.bbox.left + u.bbox.width, x));
}

function ln_text(ctx, text, x0, x1, y, color) {
  const w = ctx.measureText(text).width;
  if (w + 8 > x1 - x0) return;
  ctx.fillStyle = color;
  ctx.fillText(text, x0 + 4, y);
}

function ln_hatch(ctx, x0, y0, w, h, color) {
  ctx.save();
  ctx.beginPath();
  ctx.rect(x0, y0, w, h);
  ctx.clip();
  ctx.strokeStyle = color;
  ctx.lineWidth = 1.5;
  for (let x = x0 - h; x < x0 + w; x += 7) {
    ctx.beginPath();
    ctx.moveTo(x, y0 + h);
    ctx.lineTo(x + h, y0);
    ctx.stroke();
  }
  ctx.restore();
}

function ln_draw_lanes(u, model, L, px) {
  const { ctx, bbox } = u;
  const vmin = u.scales.x.min * 1e6, vmax = u.scales.x.max * 1e6;
  ctx.font = `${11 * px}px system-ui, sans-serif`;
  ctx.textBaseline = 'middle';
  ctx.textAlign = 'left';
  for (const lane of L.lanes) {
    const y0 = bbox.top + lane.top * px, h = lane.h * px;
    for (const s of model.lanes[lane.name] || []) {
      if (s.end < vmin || s.start > vmax) continue;
      const x0 = ln_x(u, s.start), x1 = Math.max(x0 + 1, ln_x(u, s.end));
      ctx.fillStyle = LN_STATE_COLORS[s.state] || '#bbb';
      ctx.fillRect(x0, y0, x1 - x0, h);
      if (s.state === 'down') ln_hatch(ctx, x0, y0, x1 - x0, h, '#777');
      if (s.state === 'paused') ln_hatch(ctx, x0, y0, x1 - x0, h, '#b79fdc');
      const label = s.state === 'leader' ? `leader · ballot ${s.ballot}` : s.state === 'follower' ? '' : s.state;
      if (label) ln_text(ctx, label, x0, x1, y0 + h / 2, s.state === 'candidate' ? '#3a2a00' : '#fff');
    }
    // Faults that touch this replica: stripes along the lane's bottom edge,
    // cuts lowest and impairments above them, so both stay visible.
    for (const f of model.faults) {
      if (f.cls === 'process' || !f.nodes.has(lane.name) || f.end < vmin || f.start > vmax) continue;
      const x0 = ln_x(u, f.start), x1 = Math.max(x0 + 1, ln_x(u, f.end));
      const lift = f.cls === 'cut' ? 0 : 4 * px;
      ctx.fillStyle = LN_FAULT_COLORS[f.cls];
      ctx.fillRect(x0, y0 + h - 4 * px - lift, x1 - x0, 4 * px);
    }
  }
  // Election starts: a small dark tick above the lane's top edge.
  const byLane = new Map(L.lanes.map((l) => [l.name, l]));
  ctx.fillStyle = '#222';
  let lastX = -1, lastLane = null;
  for (const e of model.elections) {
    if (e.t_us < vmin || e.t_us > vmax) continue;
    const lane = byLane.get(e.node);
    const x = Math.round(ln_x(u, e.t_us));
    if (lane === lastLane && x - lastX < 2 * px) continue; // dense: one tick per 2 px
    lastX = x; lastLane = lane;
    const y = bbox.top + lane.top * px;
    ctx.beginPath();
    ctx.moveTo(x - 4 * px, y - 1 * px);
    ctx.lineTo(x + 4 * px, y - 1 * px);
    ctx.lineTo(x, y + 6 * px);
    ctx.closePath();
    ctx.fill();
  }
}

function ln_draw_faults(u, model, L, px) {
  const { ctx, bbox } = u;
  const vmin = u.scales.x.min * 1e6, vmax = u.scales.x.max * 1e6;
  ctx.font = `${10.5 * px}px system-ui, sans-serif`;
  ctx.textBaseline = 'middle';
  ctx.textAlign = 'left';
  if (L.rows.length) {
    ctx.fillStyle = '#f4f6f9';
    ctx.fillRect(bbox.left, bbox.top + (L.faultTop - SEP / 2) * px, bbox.width,
      (L.height - L.faultTop + SEP / 2) * px);
  }
  for (const f of model.faults) {
    if (f.end < vmin || f.start > vmax) continue;
    const row = L.rows[f.row];
    const y0 = bbox.top + row.top * px, h = row.h * px;
    const x0 = ln_x(u, f.start), x1 = Math.max(x0 + 2, ln_x(u, f.end));
    ctx.fillStyle = LN_FAULT_COLORS[f.cls];
    ctx.fillRect(x0, y0, x1 - x0, h);
    ctx.save();
    ctx.beginPath();
    ctx.rect(x0, y0, x1 - x0, h);
    ctx.clip();
    ctx.fillStyle = '#fff';
    ctx.fillText(f.label, x0 + 4, y0 + h / 2);
    ctx.restore();
  }
}

// What is under the mouse: a lane segment, an election or a fault.
function ln_hover(u, model, L) {
  const { left, top } = u.cursor;
  if (left === undefined || left < 0 || top < 0) { dom_tip(null); return; }
  const t = u.posToVal(left, 'x') * 1e6;
  const rect = u.over.getBoundingClientRect();
  const cx = rect.left + left, cy = rect.top + top;
  const lane = L.lanes.find((l) => top >= l.top && top < l.top + l.h + LANE_GAP);
  if (lane) {
    const s = md_lane_at(model.lanes[lane.name] || [], t);
    if (!s) { dom_tip(null); return; }
    const lines = [`${lane.name}: ${s.state}${s.ballot ? ` (ballot ${s.ballot})` : ''}`,
      `${fmt_t(s.start)} → ${fmt_t(s.end)} (${fmt_us(s.end - s.start)})`];
    const near = model.elections.filter((e) => e.node === lane.name && Math.abs(e.t_us - t) < (ln_px_us(u) * 5));
    if (near.length) lines.push(`election started at ${fmt_t(near[0].t_us)} (ballot ${near[0].ballot})`);
    const touching = model.faults.filter((f) => f.cls !== 'process' && f.nodes.has(lane.name) && f.start <= t && t < f.end);
    for (const f of touching) lines.push(`under fault: ${f.label}`);
    dom_tip(lines, cx, cy);
    return;
  }
  const row = L.rows.findIndex((r) => top >= r.top && top < r.top + r.h + FAULT_GAP);
  const slack = ln_px_us(u) * 2;
  const f = row < 0 ? null : model.faults.find((x) => x.row === row && x.start - slack <= t && t < x.end + slack);
  dom_tip(f ? [f.label, ...f.params] : null, cx, cy);
}

function ln_px_us(u) {
  return ((u.scales.x.max - u.scales.x.min) * 1e6) / Math.max(1, u.bbox.width / uPlot.pxRatio);
}

export function ln_legend() {
  const item = (color, text, cls) => dom_el('span', { class: 'key' },
    dom_el('span', { class: `swatch ${cls || ''}`, style: { background: color } }), text);
  return dom_el('div', { class: 'legend-row' },
    ...Object.entries(LN_STATE_COLORS).map(([k, c]) => item(c, k, k === 'down' || k === 'paused' ? 'hatched' : '')),
    dom_el('span', { class: 'key' }, dom_el('span', { class: 'tick' }), 'election started'),
    item(LN_FAULT_COLORS.cut, 'link cut / partition'),
    item(LN_FAULT_COLORS.impair, 'loss · delay · duplicate · reorder'),
    item(LN_FAULT_COLORS.process, 'crash · pause'));
}

// The colour drawn at the centre of a replica's lane at time t (tests and
// tools read the picture itself, not the model behind it). [r, g, b] or null.
export function ln_probe(u, model, replica, t) {
  const L = ln_layout(model);
  const lane = L.lanes.find((l) => l.name === replica);
  if (!lane || t / 1e6 < u.scales.x.min || t / 1e6 > u.scales.x.max) return null;
  const px = u.bbox.height / L.height;
  const x = Math.round(u.valToPos(t / 1e6, 'x', true));
  // 7 px down: below the election ticks, above the label text and fault stripes.
  const y = Math.round(u.bbox.top + (lane.top + 7) * px);
  const d = u.ctx.getImageData(x, y, 1, 1).data;
  return [d[0], d[1], d[2]];
}

export function ln_chart(el, model) {
  const L = ln_layout(model);
  const H = L.height;
  const centers = L.lanes.map((l) => l.top + l.h / 2);
  const names = L.lanes.map((l) => l.name);
  if (L.rows.length) {
    centers.push(L.rows[0].top + ((L.rows.length * (FAULT_H + FAULT_GAP)) - FAULT_GAP) / 2);
    names.push('faults');
  }
  return tv_chart(el, {
    height: H + 8 + 30,
    legend: false,
    data: [[0, model.duration / 1e6], [null, null]],
    series: [{ label: 'lanes', scale: 'lane', stroke: 'transparent', points: { show: false } }],
    scales: { lane: { auto: false, range: () => [0, H] } },
    axes: [{ scale: 'lane', grid: { show: false }, ticks: { show: false },
      splits: () => centers.map((c) => H - c), values: () => names, font: 'bold 12px system-ui, sans-serif' }],
    drawOver: (u) => {
      const px = u.bbox.height / H;
      ln_draw_lanes(u, model, L, px);
      ln_draw_faults(u, model, L, px);
    },
    onHover: (u) => ln_hover(u, model, L),
  });
}
