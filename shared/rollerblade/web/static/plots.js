// Small inline SVG plots (no library): an age histogram, a bar chart of counts and a
// scatter plot with one colour per group. Each is role=img with a title and a description.

import { s, uid } from './dom.js';

//: Colour-blind-safe categorical colours (Okabe-Ito), dark enough on white.
export const PALETTE = ['#0072B2', '#D55E00', '#009E73', '#CC79A7', '#8a6d00', '#56B4E9', '#000000'];

function frame(width, height, title, description) {
  const titleId = uid('plot-title');
  const descId = uid('plot-desc');
  return s('svg', {
    viewBox: `0 0 ${width} ${height}`,
    class: 'plot',
    role: 'img',
    'aria-labelledby': `${titleId} ${descId}`,
    preserveAspectRatio: 'xMinYMin meet',
  }, s('title', { id: titleId }, title), s('desc', { id: descId }, description));
}

function niceStep(span, target) {
  const raw = span / Math.max(1, target);
  const power = 10 ** Math.floor(Math.log10(raw || 1));
  return [1, 2, 5, 10].map((m) => m * power).find((step) => step >= raw) || power * 10;
}

function ticks(min, max, target = 5) {
  if (min === max) return [min];
  const step = niceStep(max - min, target);
  const out = [];
  for (let v = Math.ceil(min / step) * step; v <= max + step * 1e-9; v += step) out.push(Math.round(v * 1e6) / 1e6);
  return out;
}

/** A histogram of values (e.g. ages) in bins of `bin`. */
export function histogram(values, { title, bin = 10, unit = '' }) {
  const width = 220;
  const height = 110;
  const clean = values.filter((v) => Number.isFinite(v));
  const svg = frame(width, height, title, clean.length
    ? `${clean.length} values from ${Math.min(...clean)} to ${Math.max(...clean)}${unit}`
    : 'no values');
  if (!clean.length) return svg;
  const lo = Math.floor(Math.min(...clean) / bin) * bin;
  const hi = Math.floor(Math.max(...clean) / bin) * bin;
  const bins = [];
  for (let b = lo; b <= hi; b += bin) bins.push({ from: b, n: clean.filter((v) => v >= b && v < b + bin).length });
  const most = Math.max(...bins.map((b) => b.n));
  const plotH = height - 30;
  const barW = (width - 20) / bins.length;
  bins.forEach((b, i) => {
    const barH = (b.n / most) * (plotH - 12);
    const x = 10 + i * barW;
    svg.append(s('rect', { x: x + 1, y: 10 + plotH - 12 - barH, width: Math.max(1, barW - 2), height: barH, class: 'bar' },
      s('title', {}, `${b.from}–${b.from + bin - 1}${unit}: ${b.n}`)));
    svg.append(s('text', { x: x + barW / 2, y: height - 6, 'text-anchor': 'middle', class: 'tick' }, String(b.from)));
    if (b.n) svg.append(s('text', { x: x + barW / 2, y: 8 + plotH - 12 - barH, 'text-anchor': 'middle', class: 'tick' }, String(b.n)));
  });
  return svg;
}

/** Horizontal bars, one per key of counts ({M: 3, F: 4}). */
export function bars(counts, { title }) {
  const entries = Object.entries(counts).sort((a, b) => b[1] - a[1]);
  const width = 220;
  const rowH = 22;
  const height = Math.max(1, entries.length) * rowH + 8;
  const total = entries.reduce((n, [, c]) => n + c, 0);
  const svg = frame(width, height, title, entries.map(([k, c]) => `${k}: ${c}`).join(', ') || 'no values');
  const most = Math.max(1, ...entries.map(([, c]) => c));
  entries.forEach(([key, count], i) => {
    const y = 4 + i * rowH;
    const w = (count / most) * (width - 90);
    svg.append(s('text', { x: 4, y: y + 15, class: 'tick' }, key));
    svg.append(s('rect', { x: 40, y: y + 3, width: Math.max(1, w), height: rowH - 8, fill: PALETTE[i % PALETTE.length] },
      s('title', {}, `${key}: ${count} of ${total}`)));
    svg.append(s('text', { x: 46 + w, y: y + 15, class: 'tick' }, String(count)));
  });
  return svg;
}

/** Points {x, y, group, label}: one colour per group, axes with ticks, a legend. */
export function scatter(points, { title, xLabel, yLabel }) {
  const width = 640;
  const height = 360;
  const m = { left: 64, right: 150, top: 16, bottom: 46 };
  const clean = points.filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y));
  const groups = [...new Set(clean.map((p) => p.group))].sort();
  const svg = frame(width, height, title, `${clean.length} points, ${yLabel} against ${xLabel}, one colour per ${groups.length > 1 ? 'dataset' : 'group'}: ${groups.join(', ')}`);
  if (!clean.length) {
    svg.append(s('text', { x: width / 2, y: height / 2, 'text-anchor': 'middle', class: 'tick' }, 'No values to plot'));
    return svg;
  }
  const pad = (lo, hi) => (lo === hi ? [lo - 1, hi + 1] : [lo - (hi - lo) * 0.05, hi + (hi - lo) * 0.05]);
  const [x0, x1] = pad(Math.min(...clean.map((p) => p.x)), Math.max(...clean.map((p) => p.x)));
  const [y0, y1] = pad(Math.min(...clean.map((p) => p.y)), Math.max(...clean.map((p) => p.y)));
  const px = (x) => m.left + ((x - x0) / (x1 - x0)) * (width - m.left - m.right);
  const py = (y) => height - m.bottom - ((y - y0) / (y1 - y0)) * (height - m.top - m.bottom);
  const axes = s('g', { class: 'axes' });
  axes.append(s('line', { x1: m.left, y1: height - m.bottom, x2: width - m.right, y2: height - m.bottom }));
  axes.append(s('line', { x1: m.left, y1: m.top, x2: m.left, y2: height - m.bottom }));
  for (const t of ticks(x0, x1)) {
    axes.append(s('line', { x1: px(t), x2: px(t), y1: height - m.bottom, y2: height - m.bottom + 4 }));
    axes.append(s('text', { x: px(t), y: height - m.bottom + 16, 'text-anchor': 'middle', class: 'tick' }, String(t)));
  }
  for (const t of ticks(y0, y1)) {
    axes.append(s('line', { x1: m.left - 4, x2: m.left, y1: py(t), y2: py(t) }));
    axes.append(s('text', { x: m.left - 6, y: py(t) + 4, 'text-anchor': 'end', class: 'tick' }, String(t)));
  }
  axes.append(s('text', { x: (m.left + width - m.right) / 2, y: height - 8, 'text-anchor': 'middle', class: 'axis-label' }, xLabel));
  axes.append(s('text', { x: 14, y: (m.top + height - m.bottom) / 2, 'text-anchor': 'middle', class: 'axis-label',
    transform: `rotate(-90 14 ${(m.top + height - m.bottom) / 2})` }, yLabel));
  svg.append(axes);
  const colour = (g) => PALETTE[groups.indexOf(g) % PALETTE.length];
  for (const p of clean) {
    svg.append(s('circle', { cx: px(p.x), cy: py(p.y), r: 5, fill: colour(p.group), 'fill-opacity': 0.85, class: 'point', 'data-group': p.group },
      s('title', {}, `${p.label}: ${xLabel} ${p.x}, ${yLabel} ${p.y}`)));
  }
  groups.forEach((g, i) => {
    const y = m.top + 10 + i * 20;
    svg.append(s('circle', { cx: width - m.right + 20, cy: y, r: 5, fill: colour(g) }));
    svg.append(s('text', { x: width - m.right + 30, y: y + 4, class: 'legend' }, g));
  });
  return svg;
}
