// The query builder: an aBIDS text box with field completion, the CLI's did-you-mean
// errors, a live count (debounced, stale answers ignored), a results table with paging
// and sorting, copy as a CLI command, download as BIDS zip, run an Analysis on it.

import { api, ApiError, saveBlob } from './api.js';
import { announce, basename, clearError, field, fmt, guarded, h, scanHref, select, showError, uid } from './dom.js';

const KEY = 'rollerblade.query';
const PAGE = 50;
const DEBOUNCE_MS = 100;

/** Fields every record has (the API's /v1/fields adds meta., participant., session.). */
export const RECORD_FIELDS = [
  'dataset', 'path', 'datatype', 'suffix', 'extension', 'analysis', 'tag', 'error', 'warning',
  'sub', 'ses', 'run', 'task', 'acq', 'ce', 'rec', 'dir', 'echo', 'desc', 'space', 'label', 'mod', 'inv', 'part',
  'image.ndim', 'image.nx', 'image.ny', 'image.nz', 'image.vx', 'image.vy', 'image.vz', 'image.dtype', 'image.orientation',
  'file.size', 'file.md5',
];
const KEYWORDS = ['AND', 'OR', 'NOT', 'IN', 'exists('];

const KEY_META = ['RepetitionTime', 'EchoTime', 'MagneticFieldStrength'];
const COLUMNS = [
  { key: 'dataset', label: 'Dataset', get: (r) => r.dataset },
  { key: 'sub', label: 'sub', get: (r) => r.entities.sub },
  { key: 'ses', label: 'ses', get: (r) => r.entities.ses },
  { key: 'task', label: 'task', get: (r) => r.entities.task },
  { key: 'run', label: 'run', get: (r) => r.entities.run },
  { key: 'suffix', label: 'suffix', get: (r) => r.entities.suffix },
  { key: 'extension', label: 'ext', get: (r) => r.entities.extension },
  ...KEY_META.map((k) => ({ key: `meta.${k}`, label: k, get: (r) => r.meta[k], numeric: true })),
  { key: 'age', label: 'Age', get: (r) => (r.session && r.session.age !== undefined ? r.session.age : r.participant.age), numeric: true },
  { key: 'sex', label: 'Sex', get: (r) => r.participant.sex },
];

/** The query as a shell command (single quotes, inner quotes escaped). */
export function cliCommand(query) {
  return `rollerblade query '${query.replace(/'/g, "'\\''")}'`;
}

/** The word being typed at the caret: [start, end, text]. */
function wordAt(text, caret) {
  let start = caret;
  while (start > 0 && /[A-Za-z0-9_.\-(]/.test(text[start - 1])) start -= 1;
  if (text[start] === '(') start += 1;
  let end = caret;
  while (end < text.length && /[A-Za-z0-9_.\-]/.test(text[end])) end += 1;
  return [start, end, text.slice(start, caret)];
}

/** Whether the word at start is a value (after an operator or inside IN (...)). */
function isValue(text, start) {
  const before = text.slice(0, start).trimEnd();
  if (/(=|!=|<=|>=|<|>)$/.test(before)) return true;
  const open = before.lastIndexOf('(');
  return open >= 0 && /\bIN\s*$/i.test(before.slice(0, open)) && !before.slice(open).includes(')');
}

function compare(a, b) {
  const empty = (v) => v === undefined || v === null || v === '';
  if (empty(a) && empty(b)) return 0;
  if (empty(a)) return 1;
  if (empty(b)) return -1;
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  return String(a).localeCompare(String(b), undefined, { numeric: true });
}

export async function render(main) {
  let fields = RECORD_FIELDS.slice();
  const input = h('input', {
    type: 'text', class: 'query-input', spellcheck: false, autocomplete: 'off', autocapitalize: 'off',
    role: 'combobox', 'aria-autocomplete': 'list', 'aria-expanded': 'false',
    placeholder: 'suffix=T1w AND participant.age>=60',
  });
  const listId = uid('fields');
  input.setAttribute('aria-controls', listId);
  const list = h('ul', { id: listId, role: 'listbox', class: 'completions', 'aria-label': 'Field suggestions', hidden: true });
  const count = h('output', { class: 'count', 'aria-live': 'polite' }, '…');
  const queryAlert = h('div', { class: 'alert query-alert', role: 'alert', hidden: true });
  const form = h('form', { class: 'query-form', role: 'search', 'aria-label': 'Query' });
  const copyButton = h('button', { type: 'button' }, 'Copy as CLI command');
  const downloadButton = h('button', { type: 'button' }, 'Download as BIDS zip');
  const cliText = h('input', { type: 'text', readOnly: true, class: 'cli', 'aria-label': 'CLI command' });
  const analysisSelect = select([['', 'Choose an Analysis…']], '');
  const runButton = h('button', { type: 'button' }, 'Run on this selection');
  const runOutcome = h('p', { class: 'outcome', 'aria-live': 'polite' });
  const results = h('section', { class: 'results', 'aria-labelledby': 'results-title' });

  form.append(
    h('div', { class: 'combo' }, field('aBIDS query', input, 'Tab or Enter takes a suggested field; Ctrl+Space lists them.'), list),
    h('p', { class: 'count-line' }, 'Matching records: ', count),
    queryAlert,
    h('div', { class: 'buttons' }, h('button', { type: 'submit', class: 'primary' }, 'Show results'), copyButton, downloadButton),
    h('div', { class: 'cli-line' }, cliText),
  );
  main.append(
    h('h1', {}, 'Query'),
    form,
    h('section', { class: 'card run-box', 'aria-labelledby': 'run-title' },
      h('h2', { id: 'run-title' }, 'Run an Analysis on this selection'),
      h('div', { class: 'toolbar' }, field('Analysis', analysisSelect), runButton),
      runOutcome),
    results,
  );
  input.value = sessionStorage.getItem(KEY) || 'suffix=T1w';
  cliText.value = cliCommand(input.value);

  // -- completion ---------------------------------------------------------------------
  let options = [];
  let active = -1;
  let wordRange = null;
  function closeList() {
    list.hidden = true;
    input.setAttribute('aria-expanded', 'false');
    input.removeAttribute('aria-activedescendant');
    options = [];
    active = -1;
  }
  function setActive(i) {
    active = i;
    [...list.children].forEach((li, j) => li.setAttribute('aria-selected', j === i ? 'true' : 'false'));
    if (i >= 0) {
      input.setAttribute('aria-activedescendant', list.children[i].id);
      list.children[i].scrollIntoView({ block: 'nearest' });
    } else {
      input.removeAttribute('aria-activedescendant');
    }
  }
  function openList(force) {
    const caret = input.selectionStart ?? input.value.length;
    const [start, end, word] = wordAt(input.value, caret);
    if ((!word && !force) || isValue(input.value, start)) {
      closeList();
      return;
    }
    const needle = word.toLowerCase();
    const pool = [...fields, ...KEYWORDS];
    const starts = pool.filter((f) => f.toLowerCase().startsWith(needle));
    const within = needle ? pool.filter((f) => !f.toLowerCase().startsWith(needle) && f.toLowerCase().includes(needle)) : [];
    options = [...starts, ...within].filter((f) => f !== word).slice(0, 12);
    if (!options.length) {
      closeList();
      return;
    }
    wordRange = [start, end];
    list.replaceChildren(...options.map((f, i) => h('li', { id: `${listId}-${i}`, role: 'option', 'aria-selected': 'false', 'data-value': f }, f)));
    list.hidden = false;
    input.setAttribute('aria-expanded', 'true');
    setActive(-1);
  }
  function accept(value) {
    const [start, end] = wordRange;
    const text = input.value;
    input.value = text.slice(0, start) + value + text.slice(end);
    const caret = start + value.length;
    input.setSelectionRange(caret, caret);
    closeList();
    input.focus();
    changed();
  }
  input.addEventListener('keydown', (event) => {
    if (event.key === ' ' && event.ctrlKey) {
      event.preventDefault();
      openList(true);
      return;
    }
    if (list.hidden) return;
    if (event.key === 'ArrowDown') {
      event.preventDefault();
      setActive((active + 1) % options.length);
    } else if (event.key === 'ArrowUp') {
      event.preventDefault();
      setActive(active <= 0 ? options.length - 1 : active - 1);
    } else if (event.key === 'Enter' || event.key === 'Tab') {
      if (active < 0 && event.key === 'Enter') {
        closeList();
        return;
      }
      event.preventDefault();
      accept(options[Math.max(0, active)]);
    } else if (event.key === 'Escape') {
      event.preventDefault();
      closeList();
    }
  });
  list.addEventListener('mousedown', (event) => event.preventDefault()); // keep the focus in the box
  list.addEventListener('click', (event) => {
    const li = event.target.closest('li[role=option]');
    if (li) accept(li.dataset.value);
  });
  input.addEventListener('blur', () => setTimeout(closeList, 100));

  // -- errors with did-you-mean ---------------------------------------------------------
  function showQueryError(err) {
    const detail = err.detail || {};
    const parts = [h('p', { class: 'alert-title' }, detail.type === 'query_error' ? 'The query has an error' : `Error ${detail.status || ''}`),
      h('pre', { class: 'alert-message' }, err.message)];
    if (detail.suggestions && detail.suggestions.length) {
      parts.push(h('p', { class: 'suggestions' }, 'Did you mean: ', detail.suggestions.map((s) =>
        h('button', { type: 'button', class: 'suggestion', 'data-token': detail.token, 'data-position': detail.position, 'data-value': s,
          'aria-label': `Replace ${detail.token} with ${s}` }, s))));
    }
    queryAlert.replaceChildren(...parts);
    queryAlert.hidden = false;
  }
  queryAlert.addEventListener('click', (event) => {
    const button = event.target.closest('button.suggestion');
    if (!button) return;
    const position = Number(button.dataset.position);
    const token = button.dataset.token;
    const text = input.value;
    if (text.slice(position, position + token.length) === token) {
      input.value = text.slice(0, position) + button.dataset.value + text.slice(position + token.length);
    }
    input.focus();
    changed();
  });

  // -- live count ------------------------------------------------------------------------
  let timer = null;
  let sequence = 0;
  let inflight = null;
  async function refreshCount() {
    const mine = ++sequence;
    if (inflight) inflight.abort();
    inflight = new AbortController();
    const query = input.value;
    try {
      const answer = await api('/count', { params: { query }, signal: inflight.signal });
      if (mine !== sequence) return; // a newer keystroke won
      count.textContent = String(answer.count);
      count.dataset.query = query;
      queryAlert.hidden = true;
      queryAlert.replaceChildren();
    } catch (err) {
      if (err.name === 'AbortError' || mine !== sequence) return;
      count.textContent = '—';
      delete count.dataset.query;
      if (err instanceof ApiError && err.status === 400) showQueryError(err);
      else showError(err);
    }
  }
  function changed() {
    sessionStorage.setItem(KEY, input.value);
    cliText.value = cliCommand(input.value);
    clearTimeout(timer);
    timer = setTimeout(refreshCount, DEBOUNCE_MS);
  }
  input.addEventListener('input', () => {
    openList(false);
    changed();
  });

  // -- results: paging and sorting --------------------------------------------------------
  let cursors = [null];
  let page = 0;
  let rows = [];
  let sortKey = null;
  let sortDir = 1;
  function drawTable(query, next) {
    const sorted = rows.slice();
    if (sortKey) {
      const column = COLUMNS.find((c) => c.key === sortKey);
      sorted.sort((a, b) => sortDir * compare(column.get(a), column.get(b)));
    }
    const header = h('tr', {}, COLUMNS.map((c) => {
      const dir = sortKey === c.key ? (sortDir > 0 ? 'ascending' : 'descending') : 'none';
      return h('th', { scope: 'col', 'aria-sort': dir, class: c.numeric ? 'num' : undefined },
        h('button', { type: 'button', class: 'sort', 'data-key': c.key }, c.label, h('span', { 'aria-hidden': 'true', class: 'arrow' }, dir === 'ascending' ? ' ▲' : dir === 'descending' ? ' ▼' : '')));
    }), h('th', { scope: 'col' }, 'File'));
    const body = sorted.map((r) => h('tr', {},
      COLUMNS.map((c) => h('td', { class: c.numeric ? 'num' : undefined }, fmt(c.get(r)))),
      h('td', {}, /\.nii(\.gz)?$/.test(r.path)
        ? h('a', { href: scanHref(r.dataset, r.path), title: r.path }, basename(r.path))
        : h('span', { title: r.path }, basename(r.path)))));
    const prev = h('button', { type: 'button', disabled: page === 0 }, 'Previous page');
    const nextButton = h('button', { type: 'button', disabled: !next }, 'Next page');
    prev.addEventListener('click', () => loadPage(query, page - 1));
    nextButton.addEventListener('click', () => {
      cursors[page + 1] = next;
      loadPage(query, page + 1);
    });
    const tableEl = h('table', { class: 'records' },
      h('caption', {}, `Page ${page + 1}: ${rows.length} records of “${query || 'everything'}”` + (sortKey ? ` (this page sorted by ${sortKey})` : '')),
      h('thead', {}, header), h('tbody', {}, body));
    tableEl.addEventListener('click', (event) => {
      const button = event.target.closest('button.sort');
      if (!button) return;
      const key = button.dataset.key;
      sortDir = sortKey === key ? -sortDir : 1;
      sortKey = key;
      drawTable(query, next);
      results.querySelector(`button.sort[data-key="${key}"]`).focus();
    });
    results.replaceChildren(
      h('h2', { id: 'results-title' }, 'Results'),
      rows.length ? h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': 'Results table' }, tableEl) : h('p', { class: 'empty' }, 'No records.'),
      h('div', { class: 'pager' }, prev, h('span', {}, `Page ${page + 1}`), nextButton));
  }
  async function loadPage(query, n) {
    const answer = await guarded(() => api('/records', { params: { query, limit: PAGE, cursor: cursors[n] } }), null);
    if (!answer) return;
    page = n;
    rows = answer.records;
    drawTable(query, answer.next);
    announce(`Page ${page + 1}: ${rows.length} records`);
  }
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    closeList();
    cursors = [null];
    sortKey = null;
    try {
      clearError();
      const answer = await api('/records', { params: { query: input.value, limit: PAGE } });
      page = 0;
      rows = answer.records;
      drawTable(input.value, answer.next);
      announce(`${rows.length} records on the first page`);
    } catch (err) {
      if (err instanceof ApiError && err.status === 400) showQueryError(err);
      else showError(err);
    }
  });

  // -- copy, download, run ------------------------------------------------------------------
  copyButton.addEventListener('click', async () => {
    const command = cliCommand(input.value);
    cliText.value = command;
    try {
      await navigator.clipboard.writeText(command);
      announce('Copied the command to the clipboard');
      copyButton.textContent = 'Copied';
      setTimeout(() => { copyButton.textContent = 'Copy as CLI command'; }, 1500);
    } catch {
      cliText.focus();
      cliText.select();
      announce('Select and copy the command shown below the buttons');
    }
  });
  downloadButton.addEventListener('click', () => guarded(async () => {
    downloadButton.disabled = true;
    downloadButton.textContent = 'Preparing the zip…';
    try {
      const blob = await api('/download', { method: 'POST', body: { query: input.value }, as: 'blob' });
      saveBlob(blob, 'selection.zip');
      announce(`Downloaded selection.zip (${Math.round(blob.size / 1024)} KiB)`);
    } finally {
      downloadButton.disabled = false;
      downloadButton.textContent = 'Download as BIDS zip';
    }
  }));
  runButton.addEventListener('click', () => guarded(async () => {
    const analysis = analysisSelect.value;
    if (!analysis) {
      runOutcome.textContent = 'Choose an Analysis first.';
      analysisSelect.focus();
      return;
    }
    runButton.disabled = true;
    try {
      const started = await api('/runs', { method: 'POST', body: { analysis, query: input.value } });
      runOutcome.replaceChildren(
        `${analysis}: ${started.planned} jobs planned, ${started.queued} queued, ${started.done} already done`,
        started.cannot_run ? `, ${started.cannot_run} cannot run` : '', '. ',
        h('a', { href: `#/runs/${encodeURIComponent(analysis)}` }, 'Follow the run'));
    } finally {
      runButton.disabled = false;
    }
  }));

  // -- start ------------------------------------------------------------------------------------
  guarded(async () => {
    const known = await api('/fields');
    fields = [...RECORD_FIELDS, ...known.fields.filter((f) => !RECORD_FIELDS.includes(f)).sort()];
  });
  guarded(async () => {
    const analyses = await api('/analyses');
    for (const a of analyses) analysisSelect.append(h('option', { value: a.name }, `${a.name} ${a.version || ''}`.trim()));
  });
  refreshCount();
  input.focus();
  return () => {
    clearTimeout(timer);
    if (inflight) inflight.abort();
  };
}
