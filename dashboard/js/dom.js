// dom.js — building DOM from data without ever parsing data as markup.
//
// Every string that comes from a run file reaches the page through
// textContent, createTextNode or setAttribute on a fixed, harmless attribute:
// never innerHTML. dom_el is the only way the dashboard makes elements.

const SVG_NS = 'http://www.w3.org/2000/svg';
// Attributes data may set. Event handlers (on*), href/src and style are not
// among them: links go through dom_link, which accepts relative paths only.
const SAFE_ATTRS = new Set([
  'class', 'id', 'title', 'type', 'value', 'checked', 'selected', 'disabled', 'min', 'max', 'step',
  'placeholder', 'for', 'name', 'colspan', 'rowspan', 'role', 'tabindex', 'accept', 'multiple',
  'aria-label', 'data-kind', 'data-node', 'data-t', 'data-state', 'data-row', 'data-pass',
  'x', 'y', 'x1', 'y1', 'x2', 'y2', 'cx', 'cy', 'r', 'rx', 'width', 'height', 'd', 'fill',
  'stroke', 'stroke-width', 'stroke-dasharray', 'marker-end', 'text-anchor', 'dominant-baseline',
  'viewBox', 'points', 'opacity', 'transform', 'font-size', 'font-weight', 'refX', 'refY',
  'markerWidth', 'markerHeight', 'orient', 'markerUnits', 'preserveAspectRatio',
]);

function dom_apply(el, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'text') el.textContent = String(v);
    else if (k === 'on') for (const [ev, fn] of Object.entries(v)) el.addEventListener(ev, fn);
    else if (k === 'style') for (const [p, val] of Object.entries(v)) el.style.setProperty(p, String(val));
    else if (SAFE_ATTRS.has(k)) el.setAttribute(k, v === true ? '' : String(v));
    else throw new Error(`dom: attribute ${k} is not allowed`);
  }
}

function dom_append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

// dom_el('td', {class: 'num', text: value}, child, 'text', ...)
export function dom_el(tag, attrs, ...children) {
  const el = document.createElement(tag);
  dom_apply(el, attrs);
  dom_append(el, children);
  return el;
}

export function dom_svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  dom_apply(el, attrs);
  dom_append(el, children);
  return el;
}

// A link to a relative path inside the run directory; anything with a scheme
// (javascript:, data:, http:) or an absolute path is refused and shown as text.
export function dom_link(path, text) {
  const p = String(path);
  const relative = /^[A-Za-z0-9._-][A-Za-z0-9._\/-]*$/.test(p) && !p.split('/').includes('..');
  if (!relative) return dom_el('span', { text, title: p });
  const a = dom_el('a', { text });
  a.setAttribute('href', p);
  return a;
}

export function dom_clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

export function dom_section(title, hint, ...children) {
  return dom_el('section', { class: 'panel' },
    dom_el('h2', null, title, hint ? dom_el('span', { class: 'hint', text: hint }) : null),
    ...children);
}

// One floating tooltip for the whole page; lines are plain text.
let dom_tip_el = null;
export function dom_tip(lines, x, y) {
  if (!dom_tip_el) {
    dom_tip_el = dom_el('div', { class: 'tip', role: 'tooltip' });
    document.body.appendChild(dom_tip_el);
  }
  if (!lines || !lines.length) {
    dom_tip_el.style.display = 'none';
    return;
  }
  dom_clear(dom_tip_el);
  lines.forEach((l, i) => dom_tip_el.appendChild(dom_el('div', { class: i ? '' : 'tip-title', text: l })));
  dom_tip_el.style.display = 'block';
  const w = dom_tip_el.offsetWidth, h = dom_tip_el.offsetHeight;
  const left = Math.min(x + 14, window.innerWidth - w - 8);
  const top = y + 16 + h > window.innerHeight ? y - h - 10 : y + 16;
  dom_tip_el.style.left = `${Math.max(4, left)}px`;
  dom_tip_el.style.top = `${Math.max(4, top)}px`;
}
