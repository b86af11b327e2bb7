// Datasets: record, error and warning counts; per dataset the participants and sessions
// (age and sex plots), managers and grants, and the index problems file by file.

import { api } from './api.js';
import { bars, histogram } from './plots.js';
import { field, guarded, h, showError, table } from './dom.js';

function countsRow(ds) {
  return h('dl', { class: 'facts' },
    h('div', {}, h('dt', {}, 'Records'), h('dd', {}, String(ds.records))),
    h('div', {}, h('dt', {}, 'Errors'), h('dd', { class: ds.errors ? 'bad' : undefined }, String(ds.errors))),
    h('div', {}, h('dt', {}, 'Warnings'), h('dd', {}, String(ds.warnings))),
    h('div', {}, h('dt', {}, 'Owner'), h('dd', {}, ds.owner)),
    ds.state !== 'ready' ? h('div', {}, h('dt', {}, 'State'), h('dd', {}, ds.state)) : null);
}

async function fillSummary(card, ds) {
  const body = card.querySelector('.summary');
  let summary;
  try {
    summary = await api(`/datasets/${encodeURIComponent(ds.name)}/summary`);
  } catch (err) {
    body.replaceChildren(h('p', { class: 'empty' }, `No summary: ${err.message}`));
    return;
  }
  const ages = summary.ages || [];
  body.replaceChildren(
    h('dl', { class: 'facts' },
      h('div', {}, h('dt', {}, 'Participants'), h('dd', {}, String(summary.participants))),
      h('div', {}, h('dt', {}, 'Sessions'), h('dd', {}, String(summary.sessions))),
      h('div', {}, h('dt', {}, 'Managers'), h('dd', {}, (summary.managers || []).join(', ') || '—'))),
    h('div', { class: 'plots' },
      h('figure', {}, histogram(ages, { title: `Age of the participants of ${ds.name}`, bin: 10, unit: ' y' }),
        h('figcaption', {}, `Age (years), ${ages.length} participants`)),
      h('figure', {}, bars(summary.sex || {}, { title: `Sex of the participants of ${ds.name}` }),
        h('figcaption', {}, 'Sex'))),
  );
  const problems = summary.problems || [];
  if (problems.length) {
    const errors = problems.filter((p) => p.error).length;
    card.append(h('details', { class: 'problems' },
      h('summary', {}, `Index problems: ${errors} errors, ${problems.length - errors} warnings`),
      table(`Index problems of ${ds.name}`, [
        { label: 'File', value: (p) => h('code', {}, p.path) },
        { label: 'Kind', value: (p) => (p.error ? 'error' : 'warning') },
        { label: 'Message', value: (p) => p.error || p.warning },
      ], problems)));
  }
}

async function fillGrants(card, ds) {
  const slot = card.querySelector('.grants');
  try {
    const access = await api(`/access/${encodeURIComponent(`dataset:${ds.name}`)}`);
    slot.replaceChildren(table(`Grants on ${ds.name}`, [
      { label: 'User', value: (g) => g.user },
      { label: 'Right', value: (g) => g.right },
      { label: 'Granted by', value: (g) => g.granted_by },
    ], access.grants, { empty: 'No grants: only its managers see it.' }));
  } catch (err) {
    slot.replaceChildren(h('p', { class: 'empty' }, err.status === 403 ? 'Only its managers see the grants.' : `Grants: ${err.message}`));
  }
}

function card(ds) {
  const id = `dataset-${ds.name}`;
  return h('section', { class: 'card dataset', id, 'aria-labelledby': `${id}-title`, 'data-dataset': ds.name },
    h('h2', { id: `${id}-title` }, ds.name),
    ds.description && ds.description.Name ? h('p', { class: 'muted' }, ds.description.Name) : null,
    countsRow(ds),
    h('div', { class: 'summary' }, h('p', { class: 'loading' }, 'Loading the summary…')),
    h('h3', {}, 'Grants'),
    h('div', { class: 'grants' }, h('p', { class: 'loading' }, 'Loading…')),
    h('p', { class: 'actions' },
      h('a', { href: `#/query`, 'data-query': `dataset=${ds.name}`, class: 'query-link' }, `Query ${ds.name}`),
      ' · ',
      h('a', { href: '#/sharing' }, 'Share')),
  );
}

export async function render(main, args) {
  main.append(h('h1', {}, 'Datasets'));
  const datasets = await api('/datasets');
  if (!datasets.length) {
    main.append(h('p', { class: 'empty' }, 'You may read no dataset yet. Ask a dataset manager to share one with you.'));
    return undefined;
  }
  const filter = h('input', { type: 'search', placeholder: 'name' });
  main.append(table('Your datasets', [
    { label: 'Dataset', value: (d) => h('a', { href: `#/datasets/${encodeURIComponent(d.name)}` }, d.name) },
    { label: 'Records', value: (d) => String(d.records), numeric: true },
    { label: 'Errors', value: (d) => String(d.errors), numeric: true },
    { label: 'Warnings', value: (d) => String(d.warnings), numeric: true },
  ], datasets));
  main.append(h('div', { class: 'toolbar' }, field('Filter datasets', filter)));
  const cards = h('div', { class: 'cards' });
  main.append(cards);
  for (const ds of datasets) {
    const c = card(ds);
    cards.append(c);
    guarded(() => Promise.all([fillSummary(c, ds), fillGrants(c, ds)]));
  }
  filter.addEventListener('input', () => {
    const needle = filter.value.trim().toLowerCase();
    for (const c of cards.children) c.hidden = !!needle && !c.dataset.dataset.toLowerCase().includes(needle);
  });
  cards.addEventListener('click', (event) => {
    const link = event.target.closest('a.query-link');
    if (link) sessionStorage.setItem('rollerblade.query', link.dataset.query);
  });
  if (args[0]) {
    const target = document.getElementById(`dataset-${args[0]}`);
    if (target) {
      target.scrollIntoView();
      target.querySelector('h2').setAttribute('tabindex', '-1');
      target.querySelector('h2').focus();
    } else {
      showError(new Error(`No readable dataset named ${args[0]}.`));
    }
  }
  return undefined;
}
