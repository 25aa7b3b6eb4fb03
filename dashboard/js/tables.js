// tables.js — the verdict and key figures, the assertion table, and the events
// table (filterable by replica and kind, linked both ways to the scrubber).
//
// The events table renders only the rows in view (a long run has tens of
// thousands of events), so its cost does not grow with the run.

import { dom_el, dom_clear } from './dom.js';
import { fmt_us, fmt_t, fmt_num, fmt_value } from './fmt.js';
import { tv, tv_set_t } from './timeview.js';
import { md_bisect } from './model.js';

const ROW_H = 24;
const TB_QUIET_KINDS = new Set(['gle', 'trim']); // hidden until asked for: hundreds per run

export function tb_verdict_class(v) {
  return { pass: 'pass', fail: 'fail', unknown: 'unknown', running: 'running', interrupted: 'unknown' }[v] || 'unknown';
}

function tb_assert_limit(run, name) {
  const row = (Array.isArray(run.assertions) ? run.assertions : []).find((a) => a && a.name === name);
  return row ? row : null;
}

// The figures a newcomer asks first, each with its limit when one is asserted.
export function tb_cards(model) {
  const run = model.run, m = run.metrics || {};
  const ops = m.ops || {};
  const card = (label, value, sub, state) => dom_el('div', { class: `card ${state || ''}` },
    dom_el('div', { class: 'card-label', text: label }), dom_el('div', { class: 'card-value', text: value }),
    sub ? dom_el('div', { class: 'card-sub', text: sub }) : null);
  const lim = (name, unitFmt) => {
    const a = tb_assert_limit(run, name);
    if (!a) return { sub: null, state: '' };
    return { sub: `limit ${unitFmt(a.limit)}`, state: a.pass ? 'ok' : a.unknown ? 'warn' : 'bad' };
  };
  const un = lim('max_unavailability_ms', (v) => `${fmt_num(v)} ms`);
  const lc = lim('max_leader_changes', (v) => fmt_num(v));
  const rc = lim('recover_within_ms', (v) => `${fmt_num(v)} ms`);
  const lin = (run.checks && run.checks.linearizable) || {};
  const agree = run.checks && run.checks.logs_agree;
  const cards = [
    card('Longest unavailability', fmt_us(m.max_unavailability_us),
      [m.max_unavailability_at_us !== undefined ? `from ${fmt_t(m.max_unavailability_at_us)}` : null, un.sub].filter(Boolean).join(' · '), un.state),
    card('Leader changes', fmt_num(m.leader_changes), [`${fmt_num(m.elections_started)} elections`, lc.sub].filter(Boolean).join(' · '), lc.state),
    card('Recovery after heal', m.max_recovery_us === null ? 'never' : fmt_us(m.max_recovery_us),
      rc.sub || (Array.isArray(m.recoveries) && m.recoveries.length ? `${m.recoveries.length} heal/restart` : 'no heal in this run'), rc.state),
    card('Latency p50 / p99', `${fmt_us(m.latency_p50_us)} / ${fmt_us(m.latency_p99_us)}`, `max ${fmt_us(m.latency_max_us)}`),
    card('Operations', fmt_num(ops.ok), `ok · ${fmt_num(ops.fail)} fail · ${fmt_num(ops.info)} timed out`),
    card('Linearizable', lin.verdict === 'ok' ? 'yes' : lin.verdict === 'fail' ? 'NO' : lin.verdict || '—',
      lin.verdict === 'fail' ? `key ${lin.key}` : lin.keys !== undefined ? `${fmt_num(lin.keys)} keys checked` : null,
      lin.verdict === 'ok' ? 'ok' : lin.verdict === 'fail' ? 'bad' : lin.verdict ? 'warn' : ''),
    card('Logs agree', agree ? (agree.agree ? 'yes' : 'NO') : '—',
      agree && !agree.agree ? `index ${agree.index}: ${(agree.replicas || []).join(' vs ')}` : `${fmt_num(m.trims)} trims`,
      agree ? (agree.agree ? 'ok' : 'bad') : ''),
  ];
  return dom_el('div', { class: 'cards' }, ...cards);
}

export function tb_assertions(run) {
  const rows = Array.isArray(run.assertions) ? run.assertions : [];
  if (!rows.length)
    return dom_el('p', { class: 'empty', text: run.verdict === 'running' ? 'Assertions are evaluated when the run ends.' : 'This scenario sets no assertions.' });
  const body = rows.map((a) => {
    const state = a.unknown ? 'unknown' : a.pass ? 'pass' : 'fail';
    return dom_el('tr', { class: `row-${state}`, 'data-pass': state },
      dom_el('td', { class: 'name', text: a.name }),
      dom_el('td', { class: 'num', text: fmt_value(a.value) }),
      dom_el('td', { class: 'num', text: fmt_value(a.limit) }),
      dom_el('td', null, dom_el('span', { class: `badge ${state}`, text: state.toUpperCase() })),
      dom_el('td', { class: 'msg', text: a.message || '' }));
  });
  return dom_el('table', { class: 'assertions' },
    dom_el('thead', null, dom_el('tr', null, ...['assertion', 'value', 'limit', 'result', 'detail'].map((h) => dom_el('th', { text: h })))),
    dom_el('tbody', null, ...body));
}

// An event's fields other than time/node/kind, as "name value" pairs.
function tb_event_detail(e) {
  const parts = [];
  for (const [k, v] of Object.entries(e)) {
    if (k === 't_us' || k === 'node' || k === 'kind' || k === '_i') continue;
    if (k === 'action' && v && typeof v === 'object') {
      const { do: what, ...rest } = v;
      parts.push(`${what}${Object.keys(rest).length ? ` ${Object.entries(rest).map(([a, b]) => `${a}=${typeof b === 'string' ? b : JSON.stringify(b)}`).join(' ')}` : ''}`);
    } else if (k.endsWith('_us') && typeof v === 'number') parts.push(`${k.slice(0, -3)} ${fmt_us(v)}`);
    else parts.push(`${k} ${typeof v === 'string' ? v : JSON.stringify(v)}`);
  }
  return parts.join(' · ');
}

// State kept across re-renders (live mode).
const tb_filter = { node: '', kinds: new Set(), known: new Set(), follow: true };

export function tb_events(model) {
  const all = model.events;
  const kinds = [...new Set(all.map((e) => String(e.kind)))].sort();
  // Kinds seen for the first time are shown unless they are the noisy ones.
  for (const k of kinds) if (!tb_filter.known.has(k) && !TB_QUIET_KINDS.has(k)) tb_filter.kinds.add(k);
  tb_filter.known = new Set(kinds);
  const nodes = [...new Set(all.map((e) => String(e.node)))].sort();
  const count = dom_el('span', { class: 'hint' });
  const nodeSel = dom_el('select', { 'aria-label': 'filter by node' },
    dom_el('option', { value: '', text: 'all nodes' }), ...nodes.map((n) => dom_el('option', { value: n, text: n, selected: n === tb_filter.node })));
  const kindBoxes = kinds.map((k) => {
    const cb = dom_el('input', { type: 'checkbox', checked: tb_filter.kinds.has(k), 'data-kind': k });
    cb.addEventListener('change', () => { if (cb.checked) tb_filter.kinds.add(k); else tb_filter.kinds.delete(k); apply(); });
    const n = all.filter((e) => String(e.kind) === k).length;
    return dom_el('label', { class: 'kind' }, cb, `${k} (${n})`);
  });
  const follow = dom_el('input', { type: 'checkbox', checked: tb_filter.follow });
  follow.addEventListener('change', () => { tb_filter.follow = follow.checked; });
  const scroller = dom_el('div', { class: 'ev-scroll', tabindex: 0 });
  const spacer = dom_el('div', { class: 'ev-spacer' });
  const rowsEl = dom_el('div', { class: 'ev-rows' });
  scroller.append(spacer, rowsEl);
  let rows = [];
  let times = [];
  let current = -1;

  const render = () => {
    const first = Math.max(0, Math.floor(scroller.scrollTop / ROW_H) - 5);
    const last = Math.min(rows.length, first + Math.ceil((scroller.clientHeight || 400) / ROW_H) + 10);
    dom_clear(rowsEl);
    rowsEl.style.transform = `translateY(${first * ROW_H}px)`;
    for (let i = first; i < last; i++) {
      const e = rows[i];
      const tr = dom_el('div', { class: `ev-row${i === current ? ' current' : ''}`, 'data-kind': String(e.kind), 'data-row': i },
        dom_el('span', { class: 'ev-t', text: fmt_t(e.t_us) }),
        dom_el('span', { class: 'ev-node', text: String(e.node) }),
        dom_el('span', { class: `ev-kind k-${String(e.kind).replace(/[^a-z_-]/g, '')}`, text: String(e.kind) }),
        dom_el('span', { class: 'ev-detail', text: tb_event_detail(e) }));
      tr.addEventListener('click', () => { current = i; tv_set_t(e.t_us, onT); render(); });
      rowsEl.appendChild(tr);
    }
  };
  const apply = () => {
    rows = all.filter((e) => (!tb_filter.node || String(e.node) === tb_filter.node) && tb_filter.kinds.has(String(e.kind)));
    times = rows.map((e) => e.t_us);
    spacer.style.height = `${rows.length * ROW_H}px`;
    count.textContent = `${fmt_num(rows.length)} of ${fmt_num(all.length)} events`;
    current = Math.max(0, md_bisect(times, tv.t));
    render();
  };
  // The scrubber moved: mark the last event at or before it, and scroll to it.
  const onT = (t) => {
    current = md_bisect(times, t);
    if (tb_filter.follow && current >= 0) {
      const top = current * ROW_H, h = scroller.clientHeight;
      if (top < scroller.scrollTop || top > scroller.scrollTop + h - ROW_H) scroller.scrollTop = Math.max(0, top - h / 2);
    }
    render();
  };
  nodeSel.addEventListener('change', () => { tb_filter.node = nodeSel.value; apply(); });
  scroller.addEventListener('scroll', render);
  tv.onT.push(onT);
  const root = dom_el('div', { class: 'events' },
    dom_el('div', { class: 'ev-filters' }, nodeSel, ...kindBoxes,
      dom_el('label', { class: 'kind follow' }, follow, 'follow the scrubber'), count),
    dom_el('div', { class: 'ev-head' }, ...['time', 'node', 'kind', 'detail'].map((h) => dom_el('span', { text: h }))),
    scroller);
  return { root, start: apply };
}
