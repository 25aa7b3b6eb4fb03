// graph.js — the connectivity graph at the scrubbed instant.
//
// Every pair of nodes gets two arrows, one per direction, so a one-way cut
// shows as one red arrow beside a grey one. Replicas are coloured by role;
// each replica says how many replicas (itself included) it can talk to both
// ways, so a chained cut (one replica still sees everyone) or a quorum loss
// (nobody sees a majority) reads at a glance.

import { dom_el, dom_svg, dom_clear } from './dom.js';
import { fmt_t, fmt_sig } from './fmt.js';
import { md_state_at, md_reach } from './model.js';
import { LN_STATE_COLORS, LN_FAULT_COLORS } from './lanes.js';

const W = 360, H = 320;

function gr_positions(model) {
  const pos = {};
  const n = model.replicas.length;
  const cx = W / 2, cy = model.clients.length ? 132 : H / 2, r = n <= 2 ? 90 : 108;
  model.replicas.forEach((name, i) => {
    const a = -Math.PI / 2 + (2 * Math.PI * i) / n;
    pos[name] = { x: cx + r * Math.cos(a), y: cy + r * Math.sin(a) * 0.92 };
  });
  const m = model.clients.length;
  model.clients.forEach((name, i) => {
    pos[name] = { x: W / 2 + (i - (m - 1) / 2) * Math.min(70, (W - 60) / Math.max(1, m)), y: H - 26 };
  });
  return pos;
}

// A directed arrow from a to b, offset to its right-hand side so that a->b and
// b->a sit side by side.
function gr_arrow(pa, pb, rad, cls, title) {
  const dx = pb.x - pa.x, dy = pb.y - pa.y, len = Math.hypot(dx, dy) || 1;
  const ux = dx / len, uy = dy / len, ox = -uy * 4.5, oy = ux * 4.5;
  const x1 = pa.x + ux * rad.a + ox, y1 = pa.y + uy * rad.a + oy;
  const x2 = pb.x - ux * (rad.b + 3) + ox, y2 = pb.y - uy * (rad.b + 3) + oy;
  const g = dom_svg('g', { class: `link link-${cls}` },
    dom_svg('line', { x1, y1, x2, y2, 'marker-end': `url(#gr-head-${cls})` }));
  if (cls === 'cut') {
    const mx = (x1 + x2) / 2, my = (y1 + y2) / 2;
    g.appendChild(dom_svg('path', { d: `M${mx - 5} ${my - 5} L${mx + 5} ${my + 5} M${mx + 5} ${my - 5} L${mx - 5} ${my + 5}`, class: 'cross' }));
  }
  g.appendChild(dom_svg('title', { text: title }));
  return g;
}

function gr_defs() {
  const head = (cls, color) => dom_svg('marker', { id: `gr-head-${cls}`, viewBox: '0 0 10 10', refX: 9, refY: 5,
    markerWidth: 6, markerHeight: 6, orient: 'auto', markerUnits: 'strokeWidth' },
  dom_svg('path', { d: 'M0 0 L10 5 L0 10 z', fill: color }));
  return dom_svg('defs', null, head('ok', '#9aa6b2'), head('cut', LN_FAULT_COLORS.cut), head('impair', LN_FAULT_COLORS.impair));
}

function gr_link_title(a, b, l) {
  if (!l) return `${a} → ${b}: connected`;
  return `${a} → ${b}: ${l.faults.map((f) => f.label).join('; ')}`;
}

// The sentence under the graph: what is cut and who can still form a quorum.
function gr_summary(model, st, reach) {
  const majority = Math.floor(model.replicas.length / 2) + 1;
  const cut = [], impaired = [];
  for (const [k, l] of st.links) (l.cls === 'cut' ? cut : impaired).push(k.replace('>', '→'));
  const lines = [];
  lines.push(cut.length ? `cut: ${cut.join(', ')}` : 'no link is cut');
  if (impaired.length) lines.push(`impaired: ${impaired.join(', ')}`);
  const down = model.replicas.filter((r) => ['down', 'paused'].includes(st.roles[r].state));
  if (down.length) lines.push(`not running: ${down.map((r) => `${r} (${st.roles[r].state})`).join(', ')}`);
  const full = model.replicas.filter((r) => reach[r] >= majority);
  const leaders = model.replicas.filter((r) => st.roles[r].state === 'leader');
  lines.push(full.length ? `can reach a majority (${majority}): ${full.join(', ')}` : `quorum lost: no replica reaches a majority (${majority})`);
  lines.push(leaders.length ? `leader: ${leaders.map((r) => `${r} (ballot ${st.roles[r].ballot || '?'})`).join(', ')}` : 'no leader');
  return lines;
}

export function gr_view() {
  const svg = dom_svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'graph', role: 'img', 'aria-label': 'connectivity graph' });
  const when = dom_el('div', { class: 'graph-when' });
  const summary = dom_el('ul', { class: 'graph-summary' });
  const faults = dom_el('ul', { class: 'graph-faults' });
  const root = dom_el('div', { class: 'graph-box' }, when, svg, summary, faults);
  return { root, svg, when, summary, faults };
}

export function gr_render(view, model, t) {
  const st = md_state_at(model, t);
  const reach = md_reach(model, st);
  const pos = gr_positions(model);
  dom_clear(view.svg);
  view.svg.appendChild(gr_defs());
  const rad = (n) => (model.replicas.includes(n) ? 27 : 16);
  const links = dom_svg('g', null);
  const all = model.nodes;
  for (let i = 0; i < all.length; i++)
    for (let j = 0; j < all.length; j++) {
      const a = all[i], b = all[j];
      if (a === b || (model.clients.includes(a) && model.clients.includes(b))) continue;
      const l = st.links.get(`${a}>${b}`);
      links.appendChild(gr_arrow(pos[a], pos[b], { a: rad(a), b: rad(b) }, l ? l.cls : 'ok', gr_link_title(a, b, l)));
    }
  view.svg.appendChild(links);
  const majority = Math.floor(model.replicas.length / 2) + 1;
  for (const r of model.replicas) {
    const { state, ballot } = st.roles[r];
    const p = pos[r];
    const g = dom_svg('g', { class: `node node-${state}`, 'data-node': r, 'data-state': state });
    g.appendChild(dom_svg('circle', { cx: p.x, cy: p.y, r: 27, fill: LN_STATE_COLORS[state] || '#ccc' }));
    const dark = state === 'follower' || state === 'candidate';
    g.appendChild(dom_svg('text', { x: p.x, y: p.y - 3, 'text-anchor': 'middle', class: dark ? 'on-light' : 'on-dark', text: r }));
    g.appendChild(dom_svg('text', { x: p.x, y: p.y + 11, 'text-anchor': 'middle', class: `small ${dark ? 'on-light' : 'on-dark'}`, text: state }));
    const sees = reach[r];
    g.appendChild(dom_svg('text', { x: p.x, y: p.y + 42, 'text-anchor': 'middle', class: `reach ${sees >= majority ? 'ok' : 'bad'}`,
      text: `reaches ${sees}/${model.replicas.length}` }));
    g.appendChild(dom_svg('title', { text: `${r}: ${state}${ballot ? `, ballot ${ballot}` : ''}; talks both ways with ${sees} of ${model.replicas.length} replicas (itself included)` }));
    view.svg.appendChild(g);
  }
  for (const c of model.clients) {
    const p = pos[c];
    view.svg.appendChild(dom_svg('g', { class: 'node node-client', 'data-node': c },
      dom_svg('rect', { x: p.x - 16, y: p.y - 13, width: 32, height: 26, rx: 5 }),
      dom_svg('text', { x: p.x, y: p.y + 4, 'text-anchor': 'middle', text: c }),
      dom_svg('title', { text: `client node ${c}` })));
  }
  view.when.textContent = `At t = ${fmt_t(t)}`;
  dom_clear(view.summary);
  for (const line of gr_summary(model, st, reach)) view.summary.appendChild(dom_el('li', { text: line }));
  dom_clear(view.faults);
  for (const f of st.active)
    view.faults.appendChild(dom_el('li', { class: `fault-${f.cls}` },
      dom_el('span', { class: 'swatch', style: { background: LN_FAULT_COLORS[f.cls] } }),
      `${f.label} (since ${fmt_sig(f.start / 1e6)} s)`));
}
