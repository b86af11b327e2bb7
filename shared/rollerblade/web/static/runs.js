// Runs: per-Analysis progress (done/total, an ETA from the rate of completion) polled
// every second while anything is planned or running; the jobs with their logs and a retry
// for failed ones; the pipeline rules with the jobs each planned recently.

import { api } from './api.js';
import { announce, field, fmtDuration, fmtTime, guarded, h, select, table } from './dom.js';

const POLL_MS = 1000;
const IDLE_MS = 10000;
const STATES = ['planned', 'running', 'succeeded', 'failed'];

/** ETA from (time, done) samples: the remaining jobs at the recent rate of completion. */
export function eta(samples, remaining) {
  if (remaining <= 0) return 0;
  const recent = samples.slice(-30);
  if (recent.length < 2) return Infinity;
  const first = recent[0];
  const last = recent[recent.length - 1];
  const rate = (last.done - first.done) / ((last.time - first.time) / 1000);
  return rate > 0 ? remaining / rate : Infinity;
}

function progressBlock(name, counts, samples) {
  const total = STATES.reduce((n, s) => n + counts[s], 0);
  const done = counts.succeeded + counts.failed;
  const active = counts.planned + counts.running;
  const remaining = total - done;
  const when = active ? `about ${fmtDuration(eta(samples, remaining))} left` : 'nothing waiting';
  const id = `progress-${name}`;
  return h('section', { class: 'card run', 'aria-labelledby': `${id}-title`, 'data-analysis': name, 'data-done': String(done), 'data-total': String(total), 'data-active': String(active) },
    h('h3', { id: `${id}-title` }, name),
    h('progress', { id, max: String(Math.max(total, 1)), value: String(done), 'aria-label': `${name}: ${done} of ${total} jobs done` }),
    h('p', { class: 'run-line' }, h('strong', { class: 'done-total' }, `${done}/${total} done`),
      ` · ${counts.succeeded} succeeded · ${counts.failed} failed · ${counts.running} running · ${counts.planned} planned · ${when}`));
}

export async function render(main, args) {
  let stopped = false;
  let timer = null;
  const samples = {};
  let lastKey = '';
  const analyses = await api('/analyses');
  const names = analyses.map((a) => a.name);
  const progressBox = h('div', { class: 'runs' });
  const analysisFilter = select([['', 'All Analyses'], ...names], args[0] || '');
  const stateFilter = select([['', 'Any state'], ...STATES], '');
  const jobsBox = h('div', { class: 'jobs' });
  const rulesBox = h('div', { class: 'rules' });
  main.append(
    h('h1', {}, 'Runs'),
    h('section', { 'aria-labelledby': 'progress-title' }, h('h2', { id: 'progress-title' }, 'Progress'),
      names.length ? progressBox : h('p', { class: 'empty' }, 'No Analysis you may run.')),
    h('section', { 'aria-labelledby': 'jobs-title' }, h('h2', { id: 'jobs-title' }, 'Jobs'),
      h('div', { class: 'toolbar' }, field('Analysis', analysisFilter), field('State', stateFilter)), jobsBox),
    h('section', { 'aria-labelledby': 'rules-title' }, h('h2', { id: 'rules-title' }, 'Pipeline rules'), rulesBox),
  );

  async function showLogs(key, slot, button) {
    if (!slot.hidden) {
      slot.hidden = true;
      button.setAttribute('aria-expanded', 'false');
      return;
    }
    const text = await api(`/jobs/${encodeURIComponent(key)}/logs`, { as: 'text' });
    slot.replaceChildren(h('pre', { class: 'logs', tabindex: '0', 'aria-label': `Logs of job ${key.slice(0, 12)}` }, text || '(no logs)'));
    slot.hidden = false;
    button.setAttribute('aria-expanded', 'true');
  }

  async function loadJobs() {
    const page = await api('/jobs', { params: { analysis: analysisFilter.value, state: stateFilter.value, limit: 100 } });
    const rows = [];
    for (const job of page.jobs) {
      const logSlot = h('div', { class: 'log-slot', hidden: true });
      const logButton = h('button', { type: 'button', 'aria-expanded': 'false', 'aria-label': `Logs of job ${job.key.slice(0, 12)}` }, 'Logs');
      logButton.addEventListener('click', () => guarded(() => showLogs(job.key, logSlot, logButton)));
      const actions = [logButton];
      if (job.state === 'failed') {
        const retry = h('button', { type: 'button', 'aria-label': `Retry job ${job.key.slice(0, 12)}` }, 'Retry');
        retry.addEventListener('click', () => guarded(async () => {
          await api(`/jobs/${encodeURIComponent(job.key)}/retry`, { method: 'POST' });
          announce(`Job ${job.key.slice(0, 12)} queued again`);
          await tick(true);
        }));
        actions.push(retry);
      }
      rows.push({ job, actions, logSlot });
    }
    const view = table('Jobs, newest first', [
      { label: 'Job', value: (r) => h('code', { title: r.job.key }, r.job.key.slice(0, 12)) },
      { label: 'Analysis', value: (r) => r.job.analysis },
      { label: 'Slice', value: (r) => `${r.job.dataset}/${r.job.slice_id}` },
      { label: 'State', value: (r) => h('span', { class: `state state-${r.job.state}` }, r.job.state) },
      { label: 'Rule', value: (r) => r.job.rule || '(run)' },
      { label: 'Updated', value: (r) => fmtTime(r.job.updated) },
      { label: 'Message', value: (r) => r.job.message || '' },
      { label: 'Actions', value: (r) => h('div', { class: 'row-actions' }, r.actions, r.logSlot) },
    ], rows, { empty: 'No jobs.' });
    jobsBox.replaceChildren(view);
    return page.jobs;
  }

  async function loadRules() {
    const [rules, recent] = await Promise.all([api('/rules'), api('/jobs', { params: { limit: 500 } })]);
    const byRule = {};
    for (const job of recent.jobs) if (job.rule) (byRule[job.rule] ||= []).push(job);
    if (!rules.length) {
      rulesBox.replaceChildren(h('p', { class: 'empty' }, 'No pipeline rules in force (rollerblade rules apply DIR).'));
      return;
    }
    rulesBox.replaceChildren(...rules.map((rule) => {
      const doc = rule.doc || {};
      const jobs = byRule[rule.name] || [];
      const counts = STATES.map((s) => [s, jobs.filter((j) => j.state === s).length]).filter(([, n]) => n);
      const what = doc.run ? `run ${typeof doc.run === 'string' ? doc.run : doc.run.analysis || JSON.stringify(doc.run)}` : doc.tag ? `tag ${JSON.stringify(doc.tag)}` : '';
      return h('article', { class: 'card rule', 'aria-labelledby': `rule-${rule.name}` },
        h('h3', { id: `rule-${rule.name}` }, rule.name),
        doc.description ? h('p', {}, doc.description) : null,
        h('p', { class: 'mono' }, `on ${doc.on || ''}${doc.of ? ` of ${doc.of}` : ''}${doc.when ? ` when ${doc.when}` : ''} → ${what}`),
        h('p', {}, jobs.length ? `Planned recently: ${jobs.length} jobs (${counts.map(([s, n]) => `${n} ${s}`).join(', ')})` : 'Planned no job recently.'),
        jobs.length ? h('ul', { class: 'plain small' }, jobs.slice(0, 5).map((j) => h('li', {}, h('code', {}, j.key.slice(0, 12)), ` ${j.dataset}/${j.slice_id}: ${j.state}`))) : null);
    }));
  }

  async function tick(force) {
    if (stopped) return;
    const all = await Promise.all(names.map(async (name) => [name, await api(`/runs/${encodeURIComponent(name)}`)]));
    if (stopped) return;
    const now = Date.now();
    let active = false;
    progressBox.replaceChildren(...all.map(([name, counts]) => {
      const done = counts.succeeded + counts.failed;
      (samples[name] ||= []).push({ time: now, done });
      if (counts.planned + counts.running) active = true;
      return progressBlock(name, counts, samples[name]);
    }));
    const key = JSON.stringify(all);
    if (force || key !== lastKey) {
      lastKey = key;
      await Promise.all([loadJobs(), guarded(loadRules)]);
    }
    // Every second while anything is planned or running; else a slow look for new runs.
    if (!stopped) timer = setTimeout(() => guarded(tick), active ? POLL_MS : IDLE_MS);
  }

  analysisFilter.addEventListener('change', () => guarded(loadJobs));
  stateFilter.addEventListener('change', () => guarded(loadJobs));
  await tick(true);
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
