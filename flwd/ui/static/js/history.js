// Runs history: filters (job, status, time range, argument values) kept in the address so
// a filtered view is a link; paging; durations; live updates from GET /events.
import { h, fill, heading, errorBox, badge, hashFor } from './dom.js';
import { get, can, url } from './api.js';
import { timeEl, duration, runDuration, localToIso, isoToLocal, zoneLabel } from './time.js';
import { triggerBadge } from './trigger.js';

const STATUSES = ['queued', 'running', 'completed', 'failed', 'canceled', 'interrupted'];
const PER_PAGE = 50;
const LIVE = ['run.start', 'run.finish', 'run.canceled'];
const COLUMNS = ['Run', 'Job', 'Status', 'Trigger', 'Created', 'Duration', 'Arguments', 'Workspace'];
// GET /runs?trigger=: what started the runs (KIND:NAME, from a link, names one schedule or hook).
const TRIGGERS = [['', 'anything'], ['schedule', 'a schedule'], ['hook', 'a webhook'], ['none', 'the API or the CLI']];

function argSummary(run) {
  const args = (run.result && run.result.resolved_args) || {};
  return Object.entries(args).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`).join(' ');
}

export async function historyPage(view, { query, signal }) {
  view.append(heading('History'));
  const page = Math.max(1, Number(query.get('page')) || 1);

  // -- filters ---------------------------------------------------------------------------
  const job = h('input', { id: 'f-job', list: 'f-jobs', autocomplete: 'off', value: query.get('job_id') || '' });
  const jobsList = h('datalist', { id: 'f-jobs' });
  // Statuses: any number of them (GET /runs takes a list), none checked meaning any. The
  // address holds one status= per status; a comma list (as the API takes) reads the same.
  const wanted = new Set(query.getAll('status').flatMap((v) => v.split(',')).map((v) => v.trim()).filter(Boolean));
  const statusBoxes = STATUSES.map((s) => h('input', { type: 'checkbox', name: 'status', value: s,
    checked: wanted.has(s) }));
  const statusGroup = h('fieldset', { class: 'status-filter', 'aria-describedby': 'f-status-help' },
    h('legend', null, 'Status'),
    h('div', { class: 'choices' }, STATUSES.map((s, i) => h('label', { class: 'choice' }, statusBoxes[i], s))),
    h('p', { class: 'help', id: 'f-status-help' }, 'None checked: any status.'));
  const since = h('input', { type: 'datetime-local', id: 'f-since', value: isoToLocal(query.get('since')) });
  const until = h('input', { type: 'datetime-local', id: 'f-until', value: isoToLocal(query.get('until')) });
  const wantedTrigger = query.get('trigger') || '';
  const triggerOptions = [...TRIGGERS];
  if (wantedTrigger && !TRIGGERS.some(([value]) => value === wantedTrigger)) {
    const [kind, ...name] = wantedTrigger.split(':');
    triggerOptions.push([wantedTrigger, `${kind === 'hook' ? 'webhook' : kind} ${name.join(':')}`]);
  }
  const trigger = h('select', { id: 'f-trigger' }, triggerOptions.map(([value, text]) =>
    h('option', { value, selected: value === wantedTrigger }, text)));
  const argRows = h('div', { class: 'arg-filters' });
  let argN = 0;
  const addArgRow = (name = '', value = '') => {
    argN += 1;
    const n = argN;
    const row = h('div', { class: 'item pair' },
      h('label', { for: `f-arg-name-${n}`, class: 'sr-only' }, `Argument name ${n}`),
      h('input', { id: `f-arg-name-${n}`, class: 'arg-name', placeholder: 'argument', autocomplete: 'off', value: name }),
      h('span', { 'aria-hidden': 'true' }, '='),
      h('label', { for: `f-arg-value-${n}`, class: 'sr-only' }, `Argument value ${n}`),
      h('input', { id: `f-arg-value-${n}`, class: 'arg-value', placeholder: 'value', autocomplete: 'off', value }));
    argRows.append(row);
    return row;
  };
  for (const [key, value] of query) if (key.startsWith('arg.')) addArgRow(key.slice(4), value);
  if (!argN) addArgRow();
  const more = h('button', { type: 'button', class: 'add' }, 'Add argument filter');
  more.addEventListener('click', () => addArgRow().querySelector('input').focus());
  const workspace = query.get('workspace');
  const form = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter runs' },
    h('div', { class: 'filter-grid' },
      h('div', null, h('label', { for: 'f-job' }, 'Job'), job, jobsList),
      h('div', null, h('label', { for: 'f-since' }, 'Since'), since),
      h('div', null, h('label', { for: 'f-until' }, 'Until'), until),
      h('div', null, h('label', { for: 'f-trigger' }, 'Started by'), trigger)),
    statusGroup,
    h('fieldset', null, h('legend', null, 'Argument values'), argRows, more),
    workspace ? h('p', { class: 'muted' }, `Workspace: ${workspace}`) : null,
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Apply filters'),
      h('a', { href: '#/runs', class: 'btn' }, 'Clear filters')),
    h('p', { class: 'muted' }, `Times are in ${zoneLabel()}.`));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const q = new URLSearchParams();
    if (job.value.trim()) q.set('job_id', job.value.trim());
    for (const box of statusBoxes) if (box.checked) q.append('status', box.value);
    if (since.value) q.set('since', localToIso(since.value));
    if (until.value) q.set('until', localToIso(until.value));
    if (trigger.value) q.set('trigger', trigger.value);
    if (workspace) q.set('workspace', workspace);
    for (const row of argRows.children) {
      const name = row.querySelector('.arg-name').value.trim();
      if (name) q.append(`arg.${name}`, row.querySelector('.arg-value').value);
    }
    location.hash = '#/runs' + (q.toString() ? '?' + q : '');
  });
  view.append(form);
  if (can('jobs:read')) {
    get('jobs', { signal }).then((jobs) => jobsList.replaceChildren(...jobs.map((j) => h('option', { value: j.id }))), () => {});
  }

  // -- the table ----------------------------------------------------------------------------
  const api = new URLSearchParams();
  for (const [key, value] of query) if (key !== 'page') api.append(key, value);
  api.set('page', String(page));
  api.set('per_page', String(PER_PAGE));
  const region = h('div', { class: 'runs-region', 'aria-live': 'polite' });
  view.append(region);
  const rows = new Map(); // run id → {run, tr}
  let total = 0;

  const rowOf = (run) => {
    const status = h('td', null, badge(run.status));
    const dur = h('td', { class: 'num' }, duration(runDuration(run)));
    const source = run.provenance && run.provenance.source;
    const cells = [
      h('td', null, h('a', { href: hashFor('runs', run.id) }, run.id)),
      h('td', null, h('a', { href: hashFor('jobs', run.job_id) }, run.job_id)),
      status,
      h('td', null, triggerBadge(run)),
      h('td', null, timeEl(run.created_at)),
      dur,
      h('td', { class: 'args-cell' }, h('code', null, argSummary(run))),
      h('td', { class: 'ws' }, run.workspace || '—', source && source.name !== 'workspace' ? ` (${source.name})` : '')];
    // On a phone the table is a list of cards, each cell headed by its column's name.
    // Explicit roles: a table shown as blocks keeps its meaning for screen readers.
    cells.forEach((cell, i) => { cell.setAttribute('data-label', COLUMNS[i]); cell.setAttribute('role', 'cell'); });
    const tr = h('tr', { role: 'row' }, cells);
    return { run, tr, status, dur };
  };
  const load = async () => {
    let result;
    try {
      result = await get('runs?' + api, { signal, full: true });
    } catch (err) {
      if (err.name === 'AbortError') return;
      region.replaceChildren(errorBox(err));
      return;
    }
    total = Number(result.response.headers.get('X-Total-Count')) || 0;
    rows.clear();
    const body = h('tbody');
    for (const run of result.data) {
      const row = rowOf(run);
      rows.set(run.id, row);
      body.append(row.tr);
    }
    const pages = Math.max(1, Math.ceil(total / PER_PAGE));
    const link = (n) => {
      const q = new URLSearchParams(query);
      q.set('page', String(n));
      return '#/runs?' + q;
    };
    fill(region,
      result.data.length ? h('div', { class: 'table-wrap' }, h('table', { class: 'runs', role: 'table' },
        h('caption', { class: 'sr-only' }, 'Runs, newest first'),
        h('thead', null, h('tr', null, COLUMNS.map((t) => h('th', { scope: 'col' }, t)))), body))
        : h('p', { class: 'muted' }, 'No runs match.'),
      h('nav', { class: 'pager', 'aria-label': 'Pages' },
        page > 1 ? h('a', { href: link(page - 1), class: 'btn' }, 'Previous page') : null,
        h('span', null, ` Page ${page} of ${pages} (${total} run${total === 1 ? '' : 's'}) `),
        page < pages ? h('a', { href: link(page + 1), class: 'btn' }, 'Next page') : null));
  };
  // Runs that start from now on come as events (GET /events starts at the newest event
  // when it opens); the ones before are in the first page. Opening the stream first and
  // loading once it is open leaves no run out in between.
  let reload = 0;
  const onEvent = (message) => {
    let ev;
    try { ev = JSON.parse(message.data); } catch (_) { return; }
    const row = rows.get(ev.run_id);
    if (row) {
      const d = ev.data || {};
      if (ev.type === 'run.start') { row.run.status = 'running'; row.run.started_at = d.started_at || ev.ts; }
      if (ev.type === 'run.finish') { row.run.status = d.status; row.run.finished_at = d.finished_at || ev.ts; }
      if (ev.type !== 'run.canceled') {
        // A row whose run left the statuses asked for stays where it is (rows do not
        // vanish under the reader), marked as no longer matching.
        const left = wanted.size > 0 && !wanted.has(row.run.status);
        row.tr.classList.toggle('unmatched', left);
        row.status.replaceChildren(badge(row.run.status),
          left ? h('span', { class: 'muted unmatched-note' }, ' no longer matches the filter') : null);
        row.dur.textContent = duration(runDuration(row.run));
      }
    } else if (page === 1 && !reload && (ev.type === 'run.start' ||
        (ev.type === 'run.finish' && wanted.size > 0 && wanted.has(ev.data && ev.data.status)))) {
      // A run this page does not show, and may: a new one, or one that has just come to
      // a status asked for. Fetch the page again (once, whatever the burst).
      reload = setTimeout(() => { reload = 0; load(); }, 300);
    }
  };
  if (can('events:read')) {
    const events = new EventSource(url('events'));
    for (const type of LIVE) events.addEventListener(type, onEvent);
    signal.addEventListener('abort', () => { events.close(); clearTimeout(reload); });
    await new Promise((resolve) => {
      events.onopen = resolve;
      events.onerror = resolve; // no live updates (busy, refused): the list all the same
      signal.addEventListener('abort', resolve);
    });
    events.onopen = null;
    events.onerror = null;
  }
  if (signal.aborted) return;
  await load();

  // Durations of running runs tick.
  const ticker = setInterval(() => {
    for (const row of rows.values()) if (row.run.status === 'running') row.dur.textContent = duration(runDuration(row.run));
  }, 1000);
  signal.addEventListener('abort', () => clearInterval(ticker));
}
