// The page: login with a bearer token, hash routing between the views, the header.
// Each view module exports render(main, args, context) and may return a cleanup
// function (timers, viewers, object URLs) called when the user leaves the view.

import { api, session } from './api.js';
import { clearError, field, h, showError } from './dom.js';

const VIEWS = {
  datasets: () => import('./datasets.js'),
  query: () => import('./query.js'),
  scan: () => import('./scan.js'),
  runs: () => import('./runs.js'),
  results: () => import('./results.js'),
  sharing: () => import('./sharing.js'),
};

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const who = document.getElementById('who');
let me = null;
let cleanup = null;
let rendering = 0;

function parseHash() {
  const raw = window.location.hash.replace(/^#\/?/, '');
  const [name, ...rest] = raw.split('/');
  return { name: name || 'datasets', args: rest.map(decodeURIComponent) };
}

function leave() {
  if (cleanup) {
    try {
      cleanup();
    } catch (err) {
      console.warn('cleanup failed', err);
    }
  }
  cleanup = null;
}

async function route() {
  const ticket = ++rendering;
  leave();
  clearError();
  if (!me) return;
  const { name, args } = parseHash();
  const load = VIEWS[name];
  for (const link of nav.querySelectorAll('a')) {
    if (link.dataset.view === name) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  if (!load) {
    main.replaceChildren(h('h1', { tabindex: '-1' }, 'Not found'), h('p', {}, 'No such view. ', h('a', { href: '#/datasets' }, 'Go to the datasets.')));
    return;
  }
  main.replaceChildren(h('p', { class: 'loading' }, 'Loading…'));
  try {
    const view = await load();
    if (ticket !== rendering) return;
    main.replaceChildren();
    const done = await view.render(main, args, { me, isCurrent: () => ticket === rendering });
    if (ticket !== rendering) {
      if (typeof done === 'function') done();
      return;
    }
    cleanup = typeof done === 'function' ? done : null;
    const heading = main.querySelector('h1');
    if (heading && document.activeElement && !main.contains(document.activeElement)) {
      heading.setAttribute('tabindex', '-1');
      heading.focus({ preventScroll: true });
    }
  } catch (err) {
    if (ticket === rendering) showError(err);
  }
}

function showLogin(message) {
  leave();
  me = null;
  nav.hidden = true;
  who.hidden = true;
  const input = h('input', { type: 'password', name: 'token', autocomplete: 'off', spellcheck: false, required: true });
  const form = h('form', { class: 'login card', 'aria-labelledby': 'login-title' },
    h('h1', { id: 'login-title' }, 'Log in'),
    h('p', {}, 'Paste an API token (made with ', h('code', {}, 'rollerblade token create'), '). It is kept in this tab only and sent as an Authorization header.'),
    field('API token', input),
    h('button', { type: 'submit', class: 'primary' }, 'Log in'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const token = input.value.trim();
    if (!token) return;
    session.save(token);
    await start();
  });
  main.replaceChildren(form);
  if (message) showError(new Error(message));
  input.focus();
}

async function start() {
  clearError();
  if (parseHash().name === 'scan') {
    // A scan opened directly (a link, a reload): its view and NiiVue (3 MB) load while
    // the session is checked, not after (the view's own imports then find them loaded).
    VIEWS.scan().catch(() => {});
    import('./vendor/niivue.js').catch(() => {});
  }
  try {
    me = await api('/me');
  } catch (err) {
    session.clear();
    showLogin();
    showError(err);
    return;
  }
  document.getElementById('who-name').textContent = `Signed in as ${me.name}${me.admin ? ' (admin)' : ''}`;
  nav.hidden = false;
  who.hidden = false;
  if (!window.location.hash || window.location.hash === '#') {
    window.location.hash = '#/datasets';
    return; // hashchange renders
  }
  await route();
}

document.getElementById('logout').addEventListener('click', () => {
  session.clear();
  showLogin();
});

window.addEventListener('rollerblade:logout', (event) => {
  if (!me) return;
  session.clear();
  showLogin(`Your token was refused: ${event.detail.message}. Log in again.`);
});

document.querySelector('.skip-link').addEventListener('click', (event) => {
  event.preventDefault(); // the hash is the route: focus the content instead
  main.focus();
});

window.addEventListener('hashchange', () => route());

if (session.token()) start();
else showLogin();
