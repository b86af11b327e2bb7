// Sharing: grant and revoke rights on the datasets and Analyses you manage, who holds
// what on each, and a dataset's audit trail.

import { api } from './api.js';
import { announce, field, fmtTime, guarded, h, select, table } from './dom.js';

const RIGHTS = { dataset: ['read', 'write', 'manage'], analysis: ['run', 'manage'] };

export async function render(main, args, { me }) {
  main.append(h('h1', {}, 'Sharing'));
  const [datasets, analyses] = await Promise.all([api('/datasets'), api('/analyses')]);
  const targets = [
    ...datasets.map((d) => ({ kind: 'dataset', name: d.name })),
    ...analyses.map((a) => ({ kind: 'analysis', name: a.name })),
  ].map((t) => ({ ...t, id: `${t.kind}:${t.name}` }));
  const access = {};
  await Promise.all(targets.map(async (t) => {
    try {
      access[t.id] = await api(`/access/${encodeURIComponent(t.id)}`);
    } catch {
      access[t.id] = null;
    }
  }));
  const managed = targets.filter((t) => me.admin || (access[t.id] && access[t.id].managers.includes(me.name)));
  if (!managed.length) {
    main.append(h('p', { class: 'empty' }, 'You manage no dataset or Analysis: only their managers can share them.'));
    return undefined;
  }
  let users = [];
  try {
    users = (await api('/users')).map((u) => u.name);
  } catch {
    users = [];
  }
  const userList = h('datalist', { id: 'known-users' }, users.map((u) => h('option', { value: u })));
  const target = select(managed.map((t) => [t.id, `${t.kind} ${t.name}`]), args[0] && managed.some((t) => t.id === args[0]) ? args[0] : managed[0].id);
  const user = h('input', { type: 'text', list: 'known-users', autocomplete: 'off', spellcheck: false, required: true });
  const right = select(RIGHTS.dataset, 'read');
  const grantButton = h('button', { type: 'submit', class: 'primary' }, 'Grant');
  const revokeButton = h('button', { type: 'button' }, 'Revoke');
  const outcome = h('p', { class: 'outcome', 'aria-live': 'polite' });
  const holders = h('div', { class: 'holders' });
  const auditBox = h('div', { class: 'audit' });
  const form = h('form', { class: 'card share-form', 'aria-labelledby': 'share-title' },
    h('h2', { id: 'share-title' }, 'Grant or revoke'),
    h('div', { class: 'toolbar' }, field('Dataset or Analysis', target), field('User', user), field('Right', right)),
    h('div', { class: 'buttons' }, grantButton, revokeButton), outcome, userList);
  main.append(form,
    h('section', { 'aria-labelledby': 'holders-title' }, h('h2', { id: 'holders-title' }, 'Who has what'), holders),
    h('section', { 'aria-labelledby': 'audit-title' }, h('h2', { id: 'audit-title' }, 'Audit trail'), auditBox));

  const kindOf = () => target.value.split(':')[0];
  function syncRights() {
    const keep = right.value;
    right.replaceChildren(...RIGHTS[kindOf()].map((r) => h('option', { value: r, selected: r === keep }, r)));
  }

  async function loadHolders() {
    const found = await api(`/access/${encodeURIComponent(target.value)}`);
    holders.replaceChildren(
      h('p', {}, `Managers of ${found.kind} ${found.name}: ${found.managers.join(', ') || 'nobody'}`),
      table(`Rights on ${found.kind} ${found.name}`, [
        { label: 'User', value: (g) => g.user },
        { label: 'Right', value: (g) => g.right },
        { label: 'Granted by', value: (g) => g.granted_by },
        { label: 'When', value: (g) => fmtTime(g.granted_at) },
        { label: 'Action', value: (g) => {
          const b = h('button', { type: 'button', 'aria-label': `Revoke ${g.right} from ${g.user}` }, 'Revoke');
          b.addEventListener('click', () => change('/revocations', g.user, g.right));
          return b;
        } },
      ], found.grants, { empty: 'Nobody holds a right on it but its managers.' }));
  }

  async function loadAudit() {
    if (kindOf() !== 'dataset') {
      auditBox.replaceChildren(h('p', { class: 'empty' }, 'The audit trail is kept per dataset: choose a dataset.'));
      return;
    }
    const name = target.value.slice('dataset:'.length);
    const entries = await api('/audit', { params: { dataset: name, limit: 200 } });
    entries.sort((a, b) => b.time - a.time);
    auditBox.replaceChildren(table(`Audit trail of ${name}, newest first`, [
      { label: 'When', value: (e) => fmtTime(e.time) },
      { label: 'Who', value: (e) => e.actor },
      { label: 'Action', value: (e) => e.action },
      { label: 'Outcome', value: (e) => h('span', { class: e.outcome === 'allowed' ? undefined : 'bad' }, e.outcome) },
      { label: 'Detail', value: (e) => e.detail },
    ], entries, { empty: 'No entries.' }));
  }

  async function change(route, name, what) {
    await guarded(async () => {
      const body = { user: name, right: what, target: target.value };
      const answer = await api(route, { method: 'POST', body });
      const text = route === '/grants'
        ? `Granted ${what} on ${target.value} to ${name}.`
        : `Revoked ${what} on ${target.value} from ${name}${answer.right ? ` (keeps ${answer.right})` : ''}.`;
      outcome.textContent = text;
      announce(text);
      await Promise.all([loadHolders(), loadAudit()]);
    });
  }

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    change('/grants', user.value.trim(), right.value);
  });
  revokeButton.addEventListener('click', () => {
    if (!user.value.trim()) {
      user.focus();
      outcome.textContent = 'Name the user whose right to revoke.';
      return;
    }
    change('/revocations', user.value.trim(), right.value);
  });
  target.addEventListener('change', () => {
    syncRights();
    guarded(() => Promise.all([loadHolders(), loadAudit()]));
  });
  syncRights();
  await Promise.all([guarded(loadHolders), guarded(loadAudit)]);
  return undefined;
}
