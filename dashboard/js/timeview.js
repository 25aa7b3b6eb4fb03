// timeview.js — the one time axis every view shares: zoom range and scrubber.
//
// State is in microseconds since the run's start; uPlot charts get seconds.
// Every time chart is made through tv_chart so that all of them have the same
// left gutter (their plot areas line up), follow the same zoom (drag to zoom,
// double-click for the whole run) and draw the scrubber (click to move it).

import { dom_el } from './dom.js';

export const TV_GUTTER_PX = 78;  // y-axis width of every chart: plots align
const TV_SCRUB_COLOR = '#1565c0';
const TV_SHADE_COLOR = 'rgba(217, 58, 58, 0.13)';

export const tv = {
  duration: 1, min: 0, max: 1, t: 0,
  charts: [],       // live uPlot instances
  onT: [],          // fn(t) on scrubber moves
  onRange: [],      // fn(min, max) on zoom
  playing: null,
};

export function tv_reset(duration, keep) {
  tv_stop();
  for (const u of tv.charts) u.destroy();
  tv.charts = [];
  tv.onT = [];
  tv.onRange = [];
  const wasFull = tv.max >= tv.duration;
  tv.duration = duration;
  if (!keep) {
    tv.min = 0; tv.max = duration; tv.t = 0;
  } else {
    // Live reloads: keep the user's zoom and scrubber; a full view grows with the run.
    if (wasFull || tv.max > duration) tv.max = duration;
    tv.min = Math.min(tv.min, tv.max - 1);
    tv.t = Math.min(tv.t, duration);
  }
}

export function tv_set_range(min, max) {
  min = Math.max(0, Math.min(min, tv.duration));
  max = Math.max(0, Math.min(max, tv.duration));
  if (max - min < 1000) { const c = (min + max) / 2; min = Math.max(0, c - 500); max = min + 1000; }
  tv.min = min; tv.max = max;
  for (const u of tv.charts) u.setScale('x', { min: min / 1e6, max: max / 1e6 });
  for (const fn of tv.onRange) fn(min, max);
}

// Move the scrubber; pan the zoomed window when t leaves it.
export function tv_set_t(t, from) {
  tv.t = Math.max(0, Math.min(t, tv.duration));
  if (tv.t < tv.min || tv.t > tv.max) {
    const w = tv.max - tv.min;
    const min = Math.max(0, Math.min(tv.t - w / 2, tv.duration - w));
    tv_set_range(min, min + w);
  }
  for (const u of tv.charts) u.redraw(false);
  for (const fn of tv.onT) if (fn !== from) fn(tv.t);
}

export function tv_stop() {
  if (tv.playing) cancelAnimationFrame(tv.playing.raf);
  tv.playing = null;
}

// Sweep the scrubber through the visible range in ~12 s (stops at the end).
export function tv_play(onStop) {
  if (tv.playing) { tv_stop(); onStop(); return; }
  if (tv.t >= tv.max - 1) tv_set_t(tv.min);
  let last = performance.now();
  const rate = (tv.max - tv.min) / 12000; // µs of run per ms of wall time
  const step = (now) => {
    const next = tv.t + (now - last) * rate;
    last = now;
    if (next >= tv.max) { tv_set_t(tv.max); tv_stop(); onStop(); return; }
    tv_set_t(next);
    tv.playing.raf = requestAnimationFrame(step);
  };
  tv.playing = { raf: requestAnimationFrame(step) };
}

export function tv_fmt_axis(v) {
  const span = (tv.max - tv.min) / 1e6;
  const d = span < 0.05 ? 4 : span < 0.5 ? 3 : span < 5 ? 2 : span < 50 ? 1 : 0;
  return `${v.toFixed(d)} s`;
}

// Draw [start_us, end_us) windows as shaded bands (under the series).
function tv_shade(u, windows, color) {
  const { ctx, bbox } = u;
  ctx.save();
  ctx.fillStyle = color;
  for (const [a, b] of windows) {
    if (b / 1e6 < u.scales.x.min || a / 1e6 > u.scales.x.max) continue;
    const x0 = Math.max(bbox.left, u.valToPos(a / 1e6, 'x', true));
    const x1 = Math.min(bbox.left + bbox.width, u.valToPos(b / 1e6, 'x', true));
    ctx.fillRect(x0, bbox.top, Math.max(1, x1 - x0), bbox.height);
  }
  ctx.restore();
}

function tv_draw_scrubber(u) {
  const x = Math.round(u.valToPos(tv.t / 1e6, 'x', true));
  const { ctx, bbox } = u;
  if (x < bbox.left || x > bbox.left + bbox.width) return;
  ctx.save();
  ctx.setLineDash([]); // a dashed series leaves its pattern on the context
  ctx.strokeStyle = TV_SCRUB_COLOR;
  ctx.lineWidth = 2 * uPlot.pxRatio;
  ctx.beginPath();
  ctx.moveTo(x, bbox.top);
  ctx.lineTo(x, bbox.top + bbox.height);
  ctx.stroke();
  ctx.restore();
}

// A uPlot chart on the shared axis. spec: {height, series, data, scales, axes
// (y axes only), shade (windows), drawUnder(u), drawOver(u), legend, onHover}.
export function tv_chart(el, spec) {
  const width = Math.max(320, el.clientWidth || 900);
  const yAxes = (spec.axes || [{}]).map((a) => ({
    // label '' still reserves labelSize: every gutter is the same width.
    size: TV_GUTTER_PX - 20, label: '', labelSize: 20, gap: 4, stroke: '#445', grid: { stroke: '#eceff3' },
    ticks: { stroke: '#dde' }, ...a,
  }));
  const opts = {
    width, height: spec.height || 170,
    padding: [8, 18, 0, 0],
    legend: spec.legend === false ? { show: false } : { live: true },
    scales: { x: { time: false, auto: false, range: () => [tv.min / 1e6, tv.max / 1e6] }, ...(spec.scales || {}) },
    axes: [{ size: 30, stroke: '#445', grid: { stroke: '#eceff3' }, values: (u, s) => s.map(tv_fmt_axis) }, ...yAxes],
    series: [{ label: 'time', value: (u, v) => (v === null || v === undefined ? '—' : `${v.toFixed(3)} s`) },
      ...spec.series.map((s) => ({ points: { show: false }, spanGaps: false, ...s }))],
    cursor: {
      sync: { key: 'rift-time' },
      y: false, // a horizontal crosshair means nothing on lanes and little elsewhere
      drag: { x: true, y: false, setScale: false },
      bind: { dblclick: () => null },
      points: { size: 6 },
    },
    hooks: {
      drawClear: [(u) => {
        if (spec.shade) tv_shade(u, spec.shade, TV_SHADE_COLOR);
        if (spec.drawUnder) spec.drawUnder(u);
      }],
      draw: [(u) => { if (spec.drawOver) spec.drawOver(u); tv_draw_scrubber(u); }],
      setSelect: [(u) => {
        const { left, width: w } = u.select;
        if (w > 4) tv_set_range(u.posToVal(left, 'x') * 1e6, u.posToVal(left + w, 'x') * 1e6);
        u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
      }],
      setCursor: spec.onHover ? [(u) => spec.onHover(u)] : [],
    },
  };
  const u = new uPlot(opts, spec.data, el);
  u.setScale('x', { min: tv.min / 1e6, max: tv.max / 1e6 });
  // A click (no drag) moves the scrubber.
  let down = null;
  u.over.addEventListener('mousedown', (e) => { down = e.clientX; });
  u.over.addEventListener('click', (e) => {
    if (down !== null && Math.abs(e.clientX - down) > 3) return;
    const rect = u.over.getBoundingClientRect();
    tv_set_t(u.posToVal(e.clientX - rect.left, 'x') * 1e6);
  });
  u.over.addEventListener('dblclick', () => tv_set_range(0, tv.duration));
  u.over.setAttribute('title', '');
  tv.charts.push(u);
  return u;
}

// Charts follow their container's width.
export function tv_resize_all() {
  for (const u of tv.charts) {
    const w = u.root.parentElement ? u.root.parentElement.clientWidth : 0;
    if (w > 0 && Math.abs(w - u.width) > 2) u.setSize({ width: w, height: u.height });
  }
}

// The scrubber bar: play, slider, time readout, zoom buttons and readout.
// extra: more buttons (elements) to put beside "whole run".
export function tv_scrubber(extra) {
  const STEPS = 2000;
  const slider = dom_el('input', { type: 'range', min: 0, max: STEPS, step: 1, value: 0, class: 'scrub',
    'aria-label': 'time scrubber' });
  const readout = dom_el('span', { class: 'scrub-t' });
  const zoom = dom_el('span', { class: 'hint' });
  const play = dom_el('button', { type: 'button', class: 'btn', text: '▶ play', title: 'sweep the scrubber through the visible range' });
  const reset = dom_el('button', { type: 'button', class: 'btn', text: 'whole run', title: 'zoom out (or double-click a chart)' });
  const show = () => {
    slider.value = String(Math.round((tv.t / tv.duration) * STEPS));
    readout.textContent = `t = ${(tv.t / 1e6).toFixed(3)} s`;
    const full = tv.min <= 0 && tv.max >= tv.duration;
    zoom.textContent = full ? 'drag across a chart to zoom · click to move the scrubber'
      : `showing ${(tv.min / 1e6).toFixed(2)}–${(tv.max / 1e6).toFixed(2)} s`;
  };
  slider.addEventListener('input', () => tv_set_t((Number(slider.value) / STEPS) * tv.duration));
  play.addEventListener('click', () => {
    tv_play(() => { play.textContent = '▶ play'; });
    play.textContent = tv.playing ? '❚❚ pause' : '▶ play';
  });
  reset.addEventListener('click', () => tv_set_range(0, tv.duration));
  tv.onT.push(show);
  tv.onRange.push(show);
  show();
  return dom_el('div', { class: 'scrubber' }, play, slider, readout, reset, ...(extra || []), zoom);
}
