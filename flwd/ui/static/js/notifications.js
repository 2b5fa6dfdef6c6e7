// A run's notifications: every delivery attempt to its sinks (GET /runs/<id>/notifications),
// kept up to date from GET /events' notify.delivery events.
//
// Deliveries come after the run's own stream has ended (that stream stops at run.finish),
// so they are read from the global stream. It is opened first and the list loaded once it
// is open, so no attempt falls in between; an attempt seen both ways shows once. The
// stream stays open only while attempts may still come — the run runs, finished a short
// while ago, or a delivery waits for a retry — so an idle page holds no connection.
import { h, badge, errorBox } from './dom.js';
import { get, can, url, seg } from './api.js';
import { timeEl, zoneLabel } from './time.js';

const TERMINAL = new Set(['completed', 'failed', 'canceled', 'interrupted']);
// Attempts follow run.finish within seconds; a retry's wait (≤ 5 min) is announced by its
// `retrying` attempt, which keeps the stream open by itself.
const QUIET_AFTER_FINISH_MS = 60_000;
const COLUMNS = ['Time', 'Sink', 'Event', 'Attempt', 'Outcome'];

function keyOf(d) { return `${d.delivery}|${d.attempt}|${d.outcome}`; }

/**
 * The section and `update(run)`, which the run page calls when its status changes. It
 * shows once there is an attempt: a run that notified no one (most runs) has none, and a
 * session that may not read runs sees none.
 */
export function notificationsSection(run, { signal }) {
  const body = h('tbody');
  const alert = h('div');
  const table = h('div', { class: 'table-wrap', hidden: true }, h('table', { class: 'deliveries', role: 'table' },
    h('caption', { class: 'sr-only' }, `Delivery attempts, oldest first; times in ${zoneLabel()}`),
    h('thead', null, h('tr', null, COLUMNS.map((t) => h('th', { scope: 'col' }, t)))), body));
  const el = h('section', { class: 'notifications', 'aria-labelledby': 'notifications-title', hidden: true },
    h('h2', { id: 'notifications-title' }, 'Notifications'), alert, table);
  if (!can('runs:read')) return { el, update() {} };

  const seen = new Map(); // key → row
  const latest = new Map(); // delivery → its last outcome (retrying: more to come)
  let status = run.status;
  let finishedAt = run.finished_at ? Date.parse(run.finished_at) : 0;

  const add = (d, at) => {
    const key = keyOf(d);
    if (seen.has(key)) return;
    const attempts = d.attempts ? ` of ${d.attempts}` : '';
    const detail = [d.status !== null && d.status !== undefined ? String(d.status) : '', d.error || '',
      d.outcome === 'retrying' && d.next_retry_in ? `next try in ${Math.ceil(d.next_retry_in)} s` : '']
      .filter(Boolean).join(' — ');
    const cells = [
      h('td', null, timeEl(at)),
      h('td', null, h('code', null, d.sink), d.sink_kind ? h('span', { class: 'muted' }, ` (${d.sink_kind})`) : null),
      h('td', null, d.event),
      h('td', { class: 'num' }, `${d.attempt}${attempts}`),
      h('td', null, badge(d.outcome), detail ? h('span', { class: 'muted' }, ' ' + detail) : null)];
    // On a phone the rows are cards (as the history's): explicit roles keep the table's meaning.
    cells.forEach((cell, i) => { cell.setAttribute('data-label', COLUMNS[i]); cell.setAttribute('role', 'cell'); });
    const tr = h('tr', { role: 'row' }, cells);
    seen.set(key, tr);
    latest.set(d.delivery, d.outcome);
    // In time order: a live attempt may be older than one the list already had.
    const rows = [...body.children];
    const later = rows.find((row) => (row.dataset.at || '') > (at || ''));
    tr.dataset.at = at || '';
    body.insertBefore(tr, later || null);
    table.hidden = false;
    el.hidden = false;
  };

  let events = null;
  const mayStillCome = () => !TERMINAL.has(status) || Date.now() - finishedAt < QUIET_AFTER_FINISH_MS ||
    [...latest.values()].includes('retrying');
  const stop = () => { if (events) { events.close(); events = null; } };
  const load = async () => {
    try {
      const answer = await get(`runs/${seg(run.id)}/notifications`, { signal });
      for (const d of answer.deliveries || []) add(d, d.at);
      alert.replaceChildren();
    } catch (err) {
      if (err.name !== 'AbortError') {
        alert.replaceChildren(errorBox(err, 'Notifications: '));
        el.hidden = false;
      }
    }
  };
  const start = async () => {
    if (!can('events:read') || !mayStillCome()) { await load(); return; }
    events = new EventSource(url('events'));
    events.addEventListener('notify.delivery', (message) => {
      let ev;
      try { ev = JSON.parse(message.data); } catch (_) { return; }
      if (ev.run_id === run.id) add(ev.data || {}, ev.ts);
    });
    await new Promise((resolve) => {
      events.onopen = resolve;
      events.onerror = resolve; // no live updates (busy, refused): the list all the same
      signal.addEventListener('abort', resolve);
    });
    if (signal.aborted) { stop(); return; }
    await load();
  };
  const check = setInterval(() => { if (events && !mayStillCome()) stop(); }, 5000);
  signal.addEventListener('abort', () => { clearInterval(check); stop(); });
  start();
  return {
    el,
    /** The run's status changed (its page saw run.finish). */
    update(next) {
      status = next.status;
      if (TERMINAL.has(status) && !finishedAt) finishedAt = Date.parse(next.finished_at) || Date.now();
    },
  };
}
