// The shell: hash routes → pages, the navigation (only what the session's scopes
// allow), log out, and the time zone every time is shown in.
import { h, announce } from './dom.js';
import { session, loadSession, can, del, setSession, prefetch, dropPrefetched } from './api.js';
import { zoneLabel } from './time.js';
// The landing page's modules are imported here (the shell preloads exactly these, so a
// first load fetches and compiles only them, at once); every other page's module is
// imported when it is first shown.
import { jobsPage, jobPage } from './jobs.js';
import { automationPage } from './automation.js';

const later = (load, name) => async () => (await load())[name];
const ROUTES = [
  [/^\/jobs$/, async () => jobsPage, 'Jobs', 'jobs:read'],
  [/^\/jobs\/(.+)$/, async () => jobPage, 'Job', 'jobs:read'],
  [/^\/runs$/, later(() => import('./history.js'), 'historyPage'), 'History', 'runs:read'],
  [/^\/runs\/([^/]+)$/, later(() => import('./run.js'), 'runPage'), 'Run', 'runs:read'],
  // Schedules and webhooks on one page (#/schedules: the same page).
  [/^\/(?:automation|schedules)$/, async () => automationPage, 'Automation', 'jobs:read'],
  [/^\/sources$/, later(() => import('./sources.js'), 'sourcesPage'), 'Sources', 'sources:read'],
  [/^\/status$/, later(() => import('./status.js'), 'statusPage'), 'Status', 'jobs:read'],
  [/^\/login$/, later(() => import('./login.js'), 'loginPage'), 'Log in', null],
];
const NAV = [['#/jobs', 'Jobs', 'jobs:read'], ['#/runs', 'History', 'runs:read'],
  ['#/automation', 'Automation', 'jobs:read'], ['#/sources', 'Sources', 'sources:read'],
  ['#/status', 'Status', 'jobs:read']];

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const who = document.getElementById('who');
let current = null; // the AbortController of the page on screen

function renderNav(path) {
  const logged = !!session.info;
  nav.replaceChildren(...NAV.filter(([, , scope]) => logged && can(scope)).map(([href, text]) => h('li', null,
    h('a', { href, 'aria-current': path.startsWith(href.slice(1)) ? 'page' : null }, text))));
  who.replaceChildren();
  if (!logged) return;
  who.append(h('span', { class: 'muted' }, session.info.dev ? 'dev mode' : session.info.name));
  if (!session.info.dev) {
    who.append(h('button', { type: 'button', class: 'link', onclick: logout }, 'Log out'));
  }
}

async function logout() {
  try { await del('session', { login: false }); } catch (_) { /* gone already: same outcome */ }
  setSession(null);
  announce('Logged out');
  location.hash = '#/login';
}

async function route() {
  const raw = location.hash.replace(/^#/, '');
  if (!raw.startsWith('/')) { location.replace('#/jobs'); return; }
  const cut = raw.indexOf('?');
  const path = cut < 0 ? raw : raw.slice(0, cut);
  const query = new URLSearchParams(cut < 0 ? '' : raw.slice(cut + 1));
  if (current) current.abort();
  const controller = new AbortController();
  current = controller;
  if (!session.info && path !== '/login') {
    // The landing page's list is asked for beside the session (see prefetch).
    if (path === '/jobs') prefetch('jobs');
    try {
      await loadSession();
    } catch (err) {
      dropPrefetched();
      main.replaceChildren(h('div', { class: 'alert', role: 'alert' }, 'Cannot reach the server: ' + err.message));
      return;
    }
    if (controller.signal.aborted) { dropPrefetched(); return; }
    if (!session.info) {
      dropPrefetched();
      location.replace('#/login?next=' + encodeURIComponent('#' + raw));
      return;
    }
  }
  renderNav(path);
  const found = ROUTES.find(([re]) => re.test(path));
  const view = h('div', { class: 'view' });
  main.replaceChildren(view);
  if (!found) {
    view.append(h('h1', { tabindex: '-1', class: 'page-title' }, 'Not found'), h('p', null, h('a', { href: '#/jobs' }, 'Jobs')));
  } else {
    const [re, load, title, scope] = found;
    document.title = `${title} · flwd`;
    if (scope && !can(scope)) {
      view.append(h('h1', { tabindex: '-1', class: 'page-title' }, title),
        h('p', { class: 'alert', role: 'alert' }, `Your session may not see this (it lacks the scope ${scope}).`));
    } else {
      const params = re.exec(path).slice(1).map(decodeURIComponent);
      try {
        let page;
        try {
          page = await load();
        } catch (err) {
          // Its module could not be fetched (the server is away, say): say so, keep the rest.
          throw new Error(`Cannot load this page: ${err && err.message || err}`);
        }
        if (controller.signal.aborted) return;
        await page(view, { params, query, signal: controller.signal });
      } catch (err) {
        if (err && err.name === 'AbortError') return;
        view.append(h('div', { class: 'alert', role: 'alert' }, String(err && err.message || err)));
      }
    }
  }
  // After a navigation (not the first load) the focus goes to the new page's heading,
  // unless the page put it somewhere itself (the login's token field).
  const title = view.querySelector('.page-title');
  if (!controller.signal.aborted && navigated && title && !view.contains(document.activeElement)) {
    title.focus({ preventScroll: true });
  }
  navigated = true;
}

let navigated = false;

document.getElementById('zone').textContent = `Times in ${zoneLabel()}`;
document.querySelector('.skip').addEventListener('click', (event) => {
  event.preventDefault();
  main.focus();
});
window.addEventListener('hashchange', route);
route();
