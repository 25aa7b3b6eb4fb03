// app.js — boot: find the data (inlined, ?run=, file picker, live.js) and lay
// out the page for a run or a sweep.

import { dom_el, dom_clear, dom_section } from './dom.js';
import { fmt_us, fmt_t, fmt_num } from './fmt.js';
import { md_kind, md_build } from './model.js';
import { tv, tv_reset, tv_set_t, tv_set_range, tv_scrubber, tv_resize_all } from './timeview.js';
import { ln_chart, ln_legend, ln_probe } from './lanes.js';
import { ch_build } from './charts.js';
import { gr_view, gr_render } from './graph.js';
import { tb_cards, tb_assertions, tb_events, tb_verdict_class } from './tables.js';
import { lz_section } from './lin.js';
import { sw_render } from './sweep.js';
import { lv_start } from './live.js';

const app = { root: null, live: null, rendered: false };

function app_verdict_text(run) {
  const v = String(run.verdict || '');
  if (v === 'running') return 'RUNNING';
  if (!v) return run.complete === false ? 'INCOMPLETE' : 'NO VERDICT';
  return v.toUpperCase();
}

// Who led when, in one line: "r3 at 0.18 s → r1 at 5.61 s → …".
function app_leaders(model) {
  const wins = model.events.filter((e) => e.kind === 'role' && e.role === 'leader');
  if (!wins.length) return 'no replica became leader';
  const shown = wins.slice(0, 8).map((e) => `${e.node} at ${fmt_t(e.t_us)}`);
  return `leaders: ${shown.join(' → ')}${wins.length > 8 ? ` → … (${wins.length} in all)` : ''}`;
}

function app_story(model) {
  const run = model.run;
  const lines = [];
  const failed = (Array.isArray(run.assertions) ? run.assertions : []).filter((a) => a && !a.pass && !a.unknown);
  for (const a of failed) lines.push(dom_el('li', { class: 'bad', text: `failed: ${a.message || a.name}` }));
  if (model.faults.length) {
    const fs = model.faults.slice(0, 6).map((f) => `${f.label} (${(f.start / 1e6).toFixed(1)}–${(f.end / 1e6).toFixed(1)} s)`);
    lines.push(dom_el('li', { text: `faults: ${fs.join('; ')}${model.faults.length > 6 ? `; … ${model.faults.length} in all` : ''}` }));
  } else lines.push(dom_el('li', { text: 'no faults injected' }));
  lines.push(dom_el('li', { text: app_leaders(model) }));
  return dom_el('ul', { class: 'story' }, ...lines);
}

function app_header(run, model) {
  const cfg = run.config || run.scenario || {};
  const paxos = (cfg.cluster && cfg.cluster.paxos) || {};
  const meta = [
    `seed ${String(run.seed)}`, `backend ${String(run.backend || '?')}`, `${fmt_us(model.duration)}`,
    `${model.replicas.length} replicas`, paxos.fd ? `fd ${String(paxos.fd)}` : null,
    paxos.durability ? `durability ${String(paxos.durability)}` : null,
    run.started_at ? `started ${String(run.started_at)}` : null,
  ].filter(Boolean).join(' · ');
  const v = String(run.verdict || '');
  return dom_el('header', { class: `top ${tb_verdict_class(v)}` },
    dom_el('div', { class: 'verdict-badge', id: 'verdict', text: app_verdict_text(run) }),
    dom_el('div', { class: 'title' },
      dom_el('h1', { text: String(run.name || 'run') }),
      run.description ? dom_el('p', { class: 'desc', text: String(run.description) }) : null,
      dom_el('div', { class: 'meta', text: meta }),
      app_story(model)),
    dom_el('div', { class: 'live-status', id: 'live-status' }));
}

// Zoom to where the faults are (in a long run they are a sliver of the axis).
function app_fault_zoom(model) {
  if (!model.faults.length) return [];
  const a = Math.min(...model.faults.map((f) => f.start)), b = Math.max(...model.faults.map((f) => f.end));
  const pad = Math.max(1e6, (b - a) * 0.2);
  const btn = dom_el('button', { type: 'button', class: 'btn', text: 'zoom to the faults', title: 'from just before the first fault to just after the last' });
  btn.addEventListener('click', () => { tv_set_range(a - pad, b + pad); if (tv.t < a - pad || tv.t > b + pad) tv_set_t(a); });
  return [btn];
}

function app_timeline(model) {
  const graph = gr_view();
  const lanesEl = dom_el('div', { class: 'plot lanes' });
  const charts = ch_build(model);
  const section = dom_section('Timeline', 'one time axis for everything below · drag to zoom · double-click: whole run · click: move the scrubber',
    tv_scrubber(app_fault_zoom(model)),
    dom_el('div', { class: 'tl-grid' },
      dom_el('div', { class: 'tl-main' },
        dom_el('div', { class: 'chart-block' }, dom_el('h3', null, 'Leader lanes',
          dom_el('span', { class: 'hint', text: 'role of each replica over time; faults below; hover for details' })), ln_legend(), lanesEl),
        ...charts.blocks),
      dom_el('aside', { class: 'tl-side' },
        dom_el('h3', null, 'Connectivity', dom_el('span', { class: 'hint', text: 'at the scrubber' })), graph.root)));
  section.id = 'timeline';
  const draw = () => {
    const u = ln_chart(lanesEl, model);
    app.lanePixel = (replica, t) => ln_probe(u, model, replica, t);
    charts.draw();
    const show = (t) => gr_render(graph, model, t);
    tv.onT.push(show);
    show(tv.t);
  };
  return { section, draw };
}

function app_config(run) {
  const text = JSON.stringify(run.scenario || run.config || {}, null, 2);
  return dom_section('Scenario', 'as given (the resolved config is in run.json)',
    dom_el('details', null, dom_el('summary', { text: 'show the scenario file' }), dom_el('pre', { class: 'json', text: text })));
}

// Where the scrubber starts: inside the first fault (a second in, so the
// cluster has reacted), else at the longest unavailability, else at 0.
function app_first_look(model) {
  const f = model.faults.find((x) => x.cls === 'cut') || model.faults[0];
  if (f) return f.start + Math.min(1e6, (f.end - f.start) / 2);
  const m = model.run.metrics || {};
  return typeof m.max_unavailability_at_us === 'number' ? m.max_unavailability_at_us : 0;
}

function app_render_run(run, keep) {
  const model = md_build(run);
  tv_reset(model.duration, keep);
  document.title = `${app_verdict_text(run)} · ${String(run.name || 'run')} · rift`;
  const timeline = app_timeline(model);
  const events = tb_events(model);
  const lin = lz_section(run);
  const parts = [
    app_header(run, model),
    tb_cards(model),
    dom_section('Assertions', 'the scenario\'s checks: value against limit', tb_assertions(run)),
    lin,
    timeline.section,
    dom_section('Events', 'click a row to move the scrubber there', events.root),
    app_config(run),
    dom_el('footer', { text: `rift report · run.json schema ${String(run.schema_version)} · ${fmt_num(model.events.length)} events · ${fmt_num(model.faults.length)} faults` })];
  app.root.append(...parts.filter(Boolean));
  timeline.draw();
  events.start();
  tv_set_t(keep ? tv.t : app_first_look(model));
}

function app_toolbar() {
  const input = dom_el('input', { type: 'file', accept: '.json,application/json', 'aria-label': 'open run.json or sweep.json' });
  input.addEventListener('change', () => { if (input.files[0]) app_open_file(input.files[0]); });
  return dom_el('div', { class: 'toolbar' },
    dom_el('label', { class: 'btn file' }, 'Open run.json / sweep.json…', input));
}

function app_message(title, text) {
  return dom_el('section', { class: 'panel landing' }, dom_el('h2', { text: title }), dom_el('p', { text }));
}

export function app_render(data, opts) {
  const keep = !!(opts && opts.keep);
  const y = window.scrollY;
  dom_clear(app.root);
  app.root.appendChild(app_toolbar());
  const kind = md_kind(data);
  try {
    if (kind === 'run') app_render_run(data, keep);
    else if (kind === 'sweep') { tv_reset(1); sw_render(data, app.root); }
    else app.root.appendChild(app_message('rift dashboard',
      data === null || data === undefined
        ? 'No run loaded. Open a run.json or sweep.json with the button above, drop one on the page, or add ?run=PATH to the URL (served over HTTP).'
        : 'This file is neither a rift run.json nor a sweep.json.'));
  } catch (err) {
    app.root.appendChild(app_message('Could not show this file', String(err && err.stack ? err.stack : err)));
  }
  if (keep) window.scrollTo(0, y);
  app.rendered = true;
}

function app_open_file(file) {
  const reader = new FileReader();
  reader.onload = () => {
    try {
      app_render(JSON.parse(String(reader.result)));
    } catch (err) {
      app_render(null);
      app.root.appendChild(app_message(`${file.name}: not JSON`, String(err)));
    }
  };
  reader.readAsText(file);
}

function app_embedded() {
  const el = document.getElementById('rift-data');
  if (!el) return { data: null, live: null };
  let data = null;
  try {
    data = JSON.parse(el.textContent);
  } catch (err) {
    data = null;
  }
  return { data, live: el.getAttribute('data-live') };
}

function app_live(src) {
  const status = () => document.getElementById('live-status');
  app.live = lv_start(src, (data, done) => {
    app_render(data, { keep: true });
    const el = status();
    if (el) el.textContent = done ? 'live view: run finished' : `live · t = ${fmt_t(data.metrics ? data.metrics.duration_us : 0)}`;
  });
}

export function app_boot() {
  app.root = document.getElementById('app');
  const { data, live } = app_embedded();
  const param = new URLSearchParams(location.search).get('run');
  app_render(data);
  if (live) app_live(live);
  else if (param)
    fetch(param).then((r) => r.json()).then((d) => app_render(d)).catch((err) => {
      app.root.appendChild(app_message(`Could not load ${param}`,
        `${String(err)}. A page opened from disk may not fetch files: use the button above, or serve the folder over HTTP (python3 -m http.server).`));
    });
  document.addEventListener('dragover', (e) => e.preventDefault());
  document.addEventListener('drop', (e) => {
    e.preventDefault();
    if (e.dataTransfer.files[0]) app_open_file(e.dataTransfer.files[0]);
  });
  if (typeof ResizeObserver !== 'undefined') new ResizeObserver(() => tv_resize_all()).observe(app.root);
  // For tests and the console: the shared time state and what the lanes drew.
  window.riftApp = { tv, render: app_render, lanePixel: (r, t) => (app.lanePixel ? app.lanePixel(r, t) : null) };
}

app_boot();
