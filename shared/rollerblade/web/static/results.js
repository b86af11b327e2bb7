// Final results: the derivatives tagged final, one row per participant and session with
// their key values (numbers in their sidecars); QC snapshots as an image grid; the cohort
// table as CSV; a plot of a chosen value against age, one colour per dataset (site).

import { api, fileRoute, objectUrl, saveBlob } from './api.js';
import { scatter } from './plots.js';
import { analysisOf, basename, field, fmt, guarded, h, scanHref, select, table } from './dom.js';

const plural = (n, word) => `${n} ${word}${n === 1 ? '' : 's'}`;

//: Provenance keys: numbers, but not results.
const NOT_VALUES = new Set(['ExitCode', 'AnalysisVersion', 'StartTime', 'EndTime']);

function ageOf(record) {
  const session = record.session || {};
  const value = session.age !== undefined ? session.age : (record.participant || {}).age;
  const n = Number(value);
  return value === undefined || value === null || value === '' || Number.isNaN(n) ? null : n;
}

/** One row per (dataset, sub, ses) with the numeric values of its final derivatives. */
export function cohortRows(records) {
  const rows = new Map();
  for (const r of records) {
    const key = [r.dataset, r.entities.sub || '', r.entities.ses || ''].join('\u0000');
    if (!rows.has(key)) {
      rows.set(key, { dataset: r.dataset, sub: r.entities.sub || '', ses: r.entities.ses || '', age: ageOf(r),
        sex: (r.participant || {}).sex || '', values: {}, files: [] });
    }
    const row = rows.get(key);
    row.files.push(r);
    for (const [k, v] of Object.entries(r.meta || {})) {
      if (typeof v === 'number' && !NOT_VALUES.has(k)) row.values[k] = v;
    }
  }
  return [...rows.values()].sort((a, b) => a.dataset.localeCompare(b.dataset) || a.sub.localeCompare(b.sub, undefined, { numeric: true }) || a.ses.localeCompare(b.ses, undefined, { numeric: true }));
}

function csvCell(value) {
  const text = value === null || value === undefined ? '' : String(value);
  return /[",\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

export function toCsv(rows, keys) {
  const header = ['dataset', 'sub', 'ses', 'age', 'sex', ...keys];
  const lines = [header.join(',')];
  for (const r of rows) lines.push([r.dataset, r.sub, r.ses, r.age, r.sex, ...keys.map((k) => r.values[k])].map(csvCell).join(','));
  return `${lines.join('\n')}\n`;
}

export async function render(main) {
  const urls = [];
  let closed = false;
  main.append(h('h1', {}, 'Final results'));
  const [final, display] = await Promise.all([
    api('/tags/final', { params: { limit: 1000 } }),
    api('/tags/display', { params: { limit: 1000 } }),
  ]);
  const rows = cohortRows(final.records);
  const keys = [...new Set(rows.flatMap((r) => Object.keys(r.values)))].sort();

  // The cohort table.
  const csvButton = h('button', { type: 'button' }, 'Export CSV');
  csvButton.addEventListener('click', () => saveBlob(new Blob([toCsv(rows, keys)], { type: 'text/csv' }), 'final-results.csv'));
  main.append(h('section', { 'aria-labelledby': 'cohort-title' },
    h('h2', { id: 'cohort-title' }, 'Cohort'),
    h('p', {}, `${plural(final.records.length, 'final derivative')} of ${plural(rows.length, 'session')}.`, ' ', rows.length ? csvButton : null),
    table('Final values per participant and session', [
      { label: 'Dataset', value: (r) => r.dataset },
      { label: 'sub', value: (r) => r.sub },
      { label: 'ses', value: (r) => r.ses },
      { label: 'Age', value: (r) => fmt(r.age), numeric: true },
      { label: 'Sex', value: (r) => r.sex },
      ...keys.map((k) => ({ label: k, value: (r) => fmt(r.values[k]), numeric: true })),
      { label: 'Files', value: (r) => h('ul', { class: 'plain small' }, r.files.map((f) => h('li', {},
        /\.nii(\.gz)?$/.test(f.path) ? h('a', { href: scanHref(f.dataset, f.path) }, `${analysisOf(f.path)} ${f.entities.suffix}`) : basename(f.path)))) },
    ], rows, { empty: 'Nothing is tagged final yet: run an Analysis (pipeline rules tag its results).' })));

  // The plot.
  if (keys.length) {
    const choice = select(keys, keys.includes('GMVolumeML') ? 'GMVolumeML' : keys[0]);
    const plotSlot = h('div', { class: 'plot-slot' });
    const draw = () => {
      const points = rows.filter((r) => r.age !== null && r.values[choice.value] !== undefined)
        .map((r) => ({ x: r.age, y: r.values[choice.value], group: r.dataset, label: `${r.dataset} sub-${r.sub}${r.ses ? ` ses-${r.ses}` : ''}` }));
      plotSlot.replaceChildren(h('figure', {}, scatter(points, { title: `${choice.value} against age`, xLabel: 'Age (years)', yLabel: choice.value }),
        h('figcaption', {}, `${choice.value} against age at the session, one colour per dataset (site); ${plural(points.length, 'session')}.`)));
    };
    choice.addEventListener('change', draw);
    main.append(h('section', { 'aria-labelledby': 'plot-title' }, h('h2', { id: 'plot-title' }, 'Value against age'),
      h('div', { class: 'toolbar' }, field('Value', choice)), plotSlot));
    draw();
  }

  // QC snapshots.
  const snapshots = display.records.filter((r) => r.path.endsWith('.png'));
  const grid = h('ul', { class: 'snapshots' });
  main.append(h('section', { 'aria-labelledby': 'qc-title' }, h('h2', { id: 'qc-title' }, 'QC snapshots'),
    snapshots.length ? grid : h('p', { class: 'empty' }, 'No QC snapshot is tagged for display yet.')));
  for (const r of snapshots) {
    const label = `sub-${r.entities.sub}${r.entities.ses ? ` ses-${r.entities.ses}` : ''} ${r.entities.desc ? `${r.entities.desc} ` : ''}${r.entities.suffix} (${r.dataset})`;
    const img = h('img', { alt: `QC snapshot of ${label}`, width: 300, height: 100, decoding: 'async' });
    grid.append(h('li', {}, h('figure', { class: 'snapshot' }, img, h('figcaption', {}, label))));
    guarded(async () => {
      const url = await objectUrl(fileRoute(r.dataset, r.path));
      if (closed) {
        URL.revokeObjectURL(url);
        return;
      }
      urls.push(url);
      img.src = url;
    });
  }
  return () => {
    closed = true;
    urls.forEach((u) => URL.revokeObjectURL(u));
  };
}
