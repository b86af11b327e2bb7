// Small DOM helpers: elements built from data (never HTML strings), the page's alert and
// status regions, and formatting.

const SVG = 'http://www.w3.org/2000/svg';

function assign(el, props) {
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key === 'class') {
      el.setAttribute('class', value);
    } else if (key === 'text') {
      el.textContent = value;
    } else if (key in el && !key.includes('-') && key !== 'list' && !(el instanceof SVGElement)) {
      el[key] = value;
    } else {
      el.setAttribute(key, value === true ? '' : String(value));
    }
  }
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
}

/** h('button', {type: 'button', onclick: f}, 'Label') */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  assign(el, props);
  append(el, children);
  return el;
}

/** An SVG element; attributes are set as attributes. */
export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value !== undefined && value !== null) el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

let ids = 0;
/** A fresh id for label/aria links. */
export function uid(prefix = 'rb') {
  ids += 1;
  return `${prefix}-${ids}`;
}

/** A labelled control: returns [label, control] wrapped in a div. */
export function field(labelText, control, hint) {
  if (!control.id) control.id = uid('f');
  const parts = [h('label', { for: control.id }, labelText), control];
  if (hint) {
    const hintEl = h('span', { class: 'hint', id: uid('hint') }, hint);
    control.setAttribute('aria-describedby', hintEl.id);
    parts.push(hintEl);
  }
  return h('div', { class: 'field' }, parts);
}

export function select(options, value) {
  const el = h('select');
  for (const option of options) {
    const [v, label] = Array.isArray(option) ? option : [option, option];
    el.append(h('option', { value: v, selected: v === value }, label));
  }
  return el;
}

/** Show an error (an ApiError or any Error) in the page's role=alert region. */
export function showError(err, where) {
  const region = where || document.getElementById('alert');
  if (!region) return;
  const detail = err && err.detail;
  const title = detail && detail.status ? `Error ${detail.status} (${detail.type})` : 'Error';
  region.replaceChildren(h('p', { class: 'alert-title' }, title), h('pre', { class: 'alert-message' }, err.message || String(err)));
  region.hidden = false;
}

export function clearError(where) {
  const region = where || document.getElementById('alert');
  if (!region) return;
  region.replaceChildren();
  region.hidden = true;
}

/** Run an async action, sending any failure to the alert region. */
export async function guarded(action, where) {
  try {
    return await action();
  } catch (err) {
    if (err && err.name === 'AbortError') return undefined;
    showError(err, where);
    return undefined;
  }
}

/** Announce a short message politely (the page's role=status region). */
export function announce(message) {
  const region = document.getElementById('status');
  if (region) region.textContent = message;
}

export function fmt(value) {
  if (value === undefined || value === null) return '';
  if (typeof value === 'number') return Number.isInteger(value) ? String(value) : String(Math.round(value * 1000) / 1000);
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

export function fmtTime(seconds) {
  if (!seconds) return '';
  return new Date(seconds * 1000).toLocaleString();
}

export function fmtDuration(seconds) {
  if (!Number.isFinite(seconds)) return 'unknown';
  if (seconds < 60) return `${Math.max(1, Math.round(seconds))} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

/** A table from column specs [{label, value: (row) => node|text, numeric}] and rows. */
export function table(caption, columns, rows, { empty = 'Nothing to show.' } = {}) {
  if (!rows.length) return h('p', { class: 'empty' }, empty);
  const head = h('tr', {}, columns.map((c) => h('th', { scope: 'col', class: c.numeric ? 'num' : undefined }, c.label)));
  const body = rows.map((row) =>
    h('tr', {}, columns.map((c) => h('td', { class: c.numeric ? 'num' : undefined }, c.value(row)))),
  );
  return h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': caption },
    h('table', {}, h('caption', {}, caption), h('thead', {}, head), h('tbody', {}, body)));
}

/** The dataset and path of a record as a link to the scan view. */
export function scanHref(dataset, path) {
  return `#/scan/${encodeURIComponent(dataset)}/${path.split('/').map(encodeURIComponent).join('/')}`;
}

export function basename(path) {
  return path.slice(path.lastIndexOf('/') + 1);
}

/** The Analysis a derivative's path belongs to (derivatives/NAME/...), or ''. */
export function analysisOf(path) {
  const match = /^derivatives\/([^/]+)\//.exec(path);
  return match ? match[1] : '';
}
