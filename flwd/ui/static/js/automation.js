// Automation: the schedules (GET /schedules: expression, zone, next fires on the
// schedule's clock and the browser's, the last fire; Pause, Resume, Trigger now) and the
// inbound webhooks (GET /hooks: job, how a request authenticates, the URL to call, recent
// deliveries). Kept current from GET /events; a job's page shows its own part.
import { h, add, fill, heading, errorBox, badge, announce, hashFor, copyText } from './dom.js';
import { get, post, can, url, seg, server } from './api.js';
import { timeEl, fireEl, zoneLabel } from './time.js';

// Events after which the page reads the schedules again (a burst reads them once).
const SCHEDULE_EVENTS = ['schedule.fire', 'schedule.skip', 'schedule.catchup', 'schedule.pause',
  'schedule.resume'];
const RELOAD_DELAY_MS = 300;
// Without events (no events:read, or the stream is refused) the next fires still move on.
const FALLBACK_RELOAD_MS = 60_000;
const RECENT_DELIVERIES = 5;
// Runs seen to finish on /events, newest last: a list read just before a run.finish
// shows the run as it ended (bounded: a page open for days keeps only the recent ones).
const FINISHED_KEPT = 500;
const finishedRuns = new Map();

function statusOf(runId, status) { return finishedRuns.get(runId) || status; }

function sawFinish(runId, status) {
  finishedRuns.delete(runId);
  finishedRuns.set(runId, status);
  if (finishedRuns.size > FINISHED_KEPT) finishedRuns.delete(finishedRuns.keys().next().value);
}

/** GET, with a missing route (a server without schedules or hooks) as null. */
async function optional(path, signal) {
  try {
    return await get(path, { signal });
  } catch (err) {
    if (err.status === 404 || err.status === 405) return null;
    throw err;
  }
}

function dur(seconds) {
  if (!seconds) return '0 s';
  if (seconds % 3600 === 0) return `${seconds / 3600} h`;
  if (seconds % 60 === 0) return `${seconds / 60} min`;
  return `${seconds} s`;
}

function argsText(args) {
  return Object.entries(args || {}).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`).join(' ');
}

// -- schedules ---------------------------------------------------------------------------------

function lastFire(schedule) {
  const last = schedule.last_fire;
  if (!last) return h('span', { class: 'muted' }, 'none yet');
  return h('span', null, badge(last.outcome), ' ', last.fire_at ? timeEl(last.fire_at) : null,
    last.run_id ? [' — ', h('a', { href: hashFor('runs', last.run_id) }, last.run_id),
      last.run_status ? [' ', badge(statusOf(last.run_id, last.run_status))] : null] : null);
}

/** One schedule's card: what it is, when it fires next, what it did last, its buttons. */
function scheduleCard(schedule, n, { onAction, showJob = true, compact = false, level = 3 }) {
  const titleId = `schedule-${n}`;
  const zoneNote = schedule.timezone_source === 'server' ? ' (the server\'s zone)' : '';
  const fires = schedule.next_fires || [];
  const quiet = schedule.status === 'paused' ? 'paused: these are skipped until it is resumed'
    : schedule.status === 'disabled' ? 'disabled in its config: these are skipped' : null;
  const nextFires = fires.length
    ? h('ol', { class: 'fires' }, (compact ? fires.slice(0, 1) : fires).map((fire) => h('li', null, fireEl(fire, schedule.timezone))))
    : h('span', { class: 'muted' }, 'no more fires');
  const write = can('runs:write') && onAction;
  const buttons = [];
  if (write) {
    if (schedule.status === 'paused') {
      buttons.push(h('button', { type: 'button', 'data-action': 'resume', onclick: (e) => onAction(e.currentTarget, schedule, 'resume') }, 'Resume'));
    } else if (schedule.status === 'active') {
      buttons.push(h('button', { type: 'button', 'data-action': 'pause', onclick: (e) => onAction(e.currentTarget, schedule, 'pause') }, 'Pause'));
    }
    buttons.push(h('button', { type: 'button', class: 'primary', 'data-action': 'trigger', onclick: (e) => onAction(e.currentTarget, schedule, 'trigger') }, 'Trigger now'));
  }
  const args = argsText(schedule.args);
  return h('section', { class: 'card schedule', 'aria-labelledby': titleId, 'data-name': schedule.name },
    h('div', { class: 'card-head' }, h('h' + level, { id: titleId }, schedule.name), badge(schedule.status)),
    h('dl', { class: 'facts' },
      showJob ? [h('dt', null, 'Job'), h('dd', null, h('a', { href: hashFor('jobs', schedule.job_id) }, schedule.job_id))] : null,
      h('dt', null, 'When'), h('dd', null, h('code', null, schedule.cron || schedule.at || schedule.kind)),
      h('dt', null, 'Time zone'), h('dd', null, schedule.timezone, zoneNote),
      h('dt', null, compact ? 'Next fire' : 'Next fires'), h('dd', null, nextFires, quiet ? h('p', { class: 'help' }, quiet) : null),
      h('dt', null, 'Last fire'), h('dd', null, lastFire(schedule)),
      args ? [h('dt', null, 'Arguments'), h('dd', null, h('code', null, args))] : null,
      compact ? null : [h('dt', null, 'Modes'), h('dd', { class: 'muted' },
        `misfire ${schedule.misfire}, catch-up window ${dur(schedule.catchup_window_seconds)}, ` +
        `overlap ${schedule.overlap}${schedule.jitter_seconds ? `, jitter ${dur(schedule.jitter_seconds)}` : ''}`)]),
    buttons.length ? h('div', { class: 'actions' }, buttons) : null,
    h('div', { class: 'card-alert', 'aria-live': 'polite' }));
}

/** Pause, resume or fire a schedule; the card is drawn again from the answer. A card's
 * note (the run it started, a refusal) is kept in `notes` by schedule name: the cards are
 * drawn again on every schedule event, and a note must not vanish under the reader's
 * pointer with the card it was written in. */
function actions(reload, notes) {
  return async (button, schedule, action) => {
    if (action === 'trigger' && !confirm(`Run ${schedule.job_id} now, as schedule ${schedule.name} would` +
      `${argsText(schedule.args) ? ' (with ' + argsText(schedule.args) + ')' : ''}? Its next fires stay as they are.`)) {
      return;
    }
    button.disabled = true;
    notes.show(schedule.name, null);
    let started = null;
    try {
      const answer = await post(`schedules/${seg(schedule.name)}:${action}`);
      if (action === 'trigger') {
        started = answer;
        announce(`Run ${answer.id} started`);
      } else {
        announce(action === 'pause' ? `Schedule ${schedule.name} paused` : `Schedule ${schedule.name} resumed`);
      }
    } catch (err) {
      notes.show(schedule.name, errorBox(err, `${action[0].toUpperCase()}${action.slice(1)} refused: `));
      button.disabled = false;
      return;
    }
    if (started) {
      notes.show(schedule.name, h('p', { class: 'note' }, 'Started run ', h('a', { href: hashFor('runs', started.id) }, started.id), '.'));
    }
    // The button that replaces this one (Pause ↔ Resume) takes the focus.
    const next = action === 'pause' ? 'resume' : action === 'resume' ? 'pause' : 'trigger';
    await reload({ focus: [schedule.name, next] });
  };
}

/** The schedules' notes, by name, shown in their cards' alert areas across redraws. */
function scheduleNotes(region) {
  const kept = new Map();
  const place = (name) => {
    const alert = region.querySelector(`.schedule[data-name="${CSS.escape(name)}"] .card-alert`);
    const node = kept.get(name);
    // The same node moves into a fresh card: a link being pointed at stays the same link.
    if (alert && (node ? alert.firstChild !== node : alert.firstChild)) alert.replaceChildren(...(node ? [node] : []));
  };
  return {
    show(name, node) {
      if (node) kept.set(name, node); else kept.delete(name);
      place(name);
    },
    /** After the cards were drawn again. */
    restore() { for (const name of kept.keys()) place(name); },
  };
}

// -- hooks -------------------------------------------------------------------------------------

function authText(hook) {
  const parts = [];
  for (const kind of hook.auth || []) {
    if (kind === 'hmac' && hook.hmac) {
      const mac = hook.hmac;
      parts.push(`HMAC-${String(mac.algorithm || 'sha256').toUpperCase()} signature in ${mac.header}` +
        (mac.format ? `, written ${mac.format}` : '') +
        (mac.signed_payload && mac.signed_payload !== '{body}' ? `, over ${mac.signed_payload}` : ' of the body') +
        (mac.tolerance_seconds ? `, at most ${dur(mac.tolerance_seconds)} old` : ''));
    } else if (kind === 'token' && hook.token) {
      parts.push(`shared token in ${hook.token.header}`);
    } else if (kind === 'bearer') {
      parts.push('a bearer token with the scope hooks:trigger');
    } else if (kind === 'allow_ips') {
      parts.push(`only from ${(hook.allow_ips || []).join(', ')}`);
    } else if (kind === 'none') {
      parts.push('none (served by a --dev server only)');
    } else {
      parts.push(kind);
    }
  }
  return parts;
}

function mappingText(hook) {
  return Object.entries(hook.args || {}).map(([name, source]) => {
    const [where, what] = Object.entries(source)[0] || ['', ''];
    return where === 'value' ? `${name} = ${JSON.stringify(what)}` : `${name} ← ${where} ${what}`;
  });
}

/** Where people reach this server: its --public-url, else the address this page came from. */
async function publicBase() {
  const info = await server();
  return (info && info.public_url ? info.public_url : location.origin).replace(/\/+$/, '');
}

function hookCard(hook, n, signal, { showJob = true, level = 3, base = location.origin } = {}) {
  const titleId = `hook-${n}`;
  const address = base + (hook.url || `/hooks/${hook.name}`);
  const addressEl = h('code', { class: 'hook-url' }, address);
  const copy = h('button', { type: 'button', 'aria-label': `Copy the URL of ${hook.name}` }, 'Copy URL');
  copy.addEventListener('click', async () => {
    if (await copyText(address)) {
      announce('URL copied');
    } else {
      // No clipboard here (plain http): select it for the keyboard's copy.
      const range = document.createRange();
      range.selectNodeContents(addressEl);
      getSelection().removeAllRanges();
      getSelection().addRange(range);
      announce('URL selected: copy it with your keyboard');
    }
  });
  const deliveries = h('div', { class: 'deliveries-list' });
  const mapping = mappingText(hook);
  const card = h('section', { class: 'card hook', 'aria-labelledby': titleId, 'data-name': hook.name },
    h('div', { class: 'card-head' }, h('h' + level, { id: titleId }, hook.name)),
    hook.description ? h('p', null, hook.description) : null,
    h('dl', { class: 'facts' },
      showJob ? [h('dt', null, 'Job'), h('dd', null, h('a', { href: hashFor('jobs', hook.job) }, hook.job))] : null,
      h('dt', null, 'URL'), h('dd', { class: 'copy-row' }, h('span', null, 'POST '), addressEl, copy),
      h('dt', null, 'Authentication'), h('dd', null, h('ul', { class: 'plain' }, authText(hook).map((t) => h('li', null, t)))),
      mapping.length ? [h('dt', null, 'Arguments'), h('dd', null, h('ul', { class: 'plain' }, mapping.map((t) => h('li', null, h('code', null, t)))))] : null,
      can('runs:read') ? [h('dt', null, 'Recent deliveries'), h('dd', null, deliveries)] : null));
  const load = async () => {
    if (!can('runs:read')) return;
    const filter = `hook:${hook.name}`;
    let runs;
    try {
      runs = await get(`runs?${new URLSearchParams({ trigger: filter, per_page: String(RECENT_DELIVERIES) })}`, { signal });
    } catch (err) {
      if (err.name !== 'AbortError') deliveries.replaceChildren(errorBox(err));
      return;
    }
    card.runIds = new Set(runs.map((run) => run.id));
    fill(deliveries, runs.length ? h('ul', { class: 'plain recent' }, runs.map((run) => h('li', null,
      timeEl(run.created_at), ' ', badge(statusOf(run.id, run.status)), ' ', h('a', { href: hashFor('runs', run.id) }, run.id),
      run.trigger && run.trigger.delivery ? h('span', { class: 'muted' }, ' delivery ', h('code', null, run.trigger.delivery)) : null)))
      : h('span', { class: 'muted' }, 'none yet'),
    runs.length ? h('a', { href: '#/runs?' + new URLSearchParams({ trigger: filter }) }, `All runs of ${hook.name}`) : null);
  };
  card.reload = load;
  card.runIds = new Set();
  load();
  return card;
}

function issues(list, what) {
  if (!list || !list.length) return null;
  return h('div', { class: 'alert', role: 'alert' }, h('strong', null, `${list.length} ${what} not served:`),
    h('ul', null, list.map((issue) => h('li', null, [issue.path, issue.name, issue.error || issue.warning || issue.message]
      .filter(Boolean).join(': ')))));
}

// -- the page ----------------------------------------------------------------------------------

export async function automationPage(view, { query, signal }) {
  view.append(heading('Automation'),
    h('p', { class: 'muted' }, `Fire times are shown on each schedule's clock and on yours (${zoneLabel()}).`));
  const scheduleRegion = h('div', { class: 'cards' });
  const scheduleAlert = h('div');
  const hookRegion = h('div', { class: 'cards' });
  view.append(
    h('section', { 'aria-labelledby': 'schedules-title' }, h('h2', { id: 'schedules-title' }, 'Schedules'), scheduleAlert, scheduleRegion),
    h('section', { 'aria-labelledby': 'hooks-title' }, h('h2', { id: 'hooks-title' }, 'Webhooks'), hookRegion));

  let lastRuns = new Set(); // the schedules' last runs: their run.finish changes a card
  const loadSchedules = async ({ focus } = {}) => {
    let answer;
    try {
      answer = await optional('schedules', signal);
    } catch (err) {
      if (err.name !== 'AbortError') scheduleAlert.replaceChildren(errorBox(err));
      return;
    }
    scheduleAlert.replaceChildren();
    if (!answer) {
      scheduleRegion.replaceChildren(h('p', { class: 'muted' }, 'This server does not schedule runs (no GET /schedules).'));
      return;
    }
    const list = answer.schedules || [];
    lastRuns = new Set(list.map((s) => s.last_fire && s.last_fire.run_id).filter(Boolean));
    // Keep the focus where it was across a redraw (a keyboard user's place).
    const active = document.activeElement && document.activeElement.closest && document.activeElement.closest('.schedule');
    const keep = focus || (active && scheduleRegion.contains(active)
      ? [active.dataset.name, document.activeElement.dataset.action] : null);
    fill(scheduleRegion, issues(answer.errors, 'schedule declarations'),
      list.length ? list.map((s, i) => scheduleCard(s, i, { onAction: act }))
        : h('p', { class: 'muted' }, 'No schedules: a job\'s config.yaml may have a schedule: list (see docs/automation.md).'));
    notes.restore();
    if (keep) {
      const card = scheduleRegion.querySelector(`.schedule[data-name="${CSS.escape(keep[0])}"]`);
      const target = card && (card.querySelector(`[data-action="${keep[1]}"]`) || card.querySelector('button'));
      if (target) target.focus();
    }
  };
  const notes = scheduleNotes(scheduleRegion);
  const act = actions(loadSchedules, notes);

  const hookCards = new Map();
  const loadHooks = async () => {
    let answer;
    try {
      answer = await optional('hooks', signal);
    } catch (err) {
      if (err.name !== 'AbortError') hookRegion.replaceChildren(errorBox(err));
      return;
    }
    if (!answer) {
      hookRegion.replaceChildren(h('p', { class: 'muted' }, 'This server takes no webhooks (no GET /hooks).'));
      return;
    }
    const list = answer.hooks || [];
    const base = await publicBase();
    hookCards.clear();
    fill(hookRegion, issues(answer.errors, 'hook declarations'),
      list.length ? list.map((hook, i) => {
        const card = hookCard(hook, i, signal, { base });
        hookCards.set(hook.name, card);
        return card;
      }) : h('p', { class: 'muted' }, 'No webhooks: scripts/flwd.yaml or a job\'s config.yaml may declare hooks: (see docs/automation.md).'));
  };

  // Live: open the stream first, then load, so nothing falls in between.
  let timer = 0;
  const later = () => {
    if (!timer) timer = setTimeout(() => { timer = 0; loadSchedules(); }, RELOAD_DELAY_MS);
  };
  if (can('events:read')) {
    const events = new EventSource(url('events'));
    for (const type of SCHEDULE_EVENTS) events.addEventListener(type, later);
    events.addEventListener('run.finish', (message) => {
      let ev;
      try { ev = JSON.parse(message.data); } catch (_) { return; }
      sawFinish(ev.run_id, ev.data && ev.data.status);
      if (lastRuns.has(ev.run_id)) later();
      for (const card of hookCards.values()) if (card.runIds.has(ev.run_id)) card.reload();
    });
    events.addEventListener('hook.received', (message) => {
      let ev;
      try { ev = JSON.parse(message.data); } catch (_) { return; }
      const card = hookCards.get(ev.data && ev.data.hook);
      if (card) card.reload();
    });
    signal.addEventListener('abort', () => { events.close(); clearTimeout(timer); });
    await new Promise((resolve) => {
      events.onopen = resolve;
      events.onerror = resolve;
      signal.addEventListener('abort', resolve);
    });
    events.onopen = null;
    events.onerror = null;
  }
  if (signal.aborted) return;
  await Promise.all([loadSchedules(), loadHooks()]);
  const fallback = setInterval(() => loadSchedules(), FALLBACK_RELOAD_MS);
  signal.addEventListener('abort', () => clearInterval(fallback));

  // #/automation?schedule=NAME or ?hook=NAME (a run's trigger links here): that card.
  const wanted = query.get('schedule') ? ['.schedule', query.get('schedule')] : query.get('hook') ? ['.hook', query.get('hook')] : null;
  if (wanted) {
    const card = view.querySelector(`${wanted[0]}[data-name="${CSS.escape(wanted[1])}"]`);
    if (card) {
      card.classList.add('chosen');
      card.scrollIntoView({ block: 'start' });
      const title = card.querySelector('.card-head > *');
      title.setAttribute('tabindex', '-1');
      title.focus({ preventScroll: true });
    }
  }
}

/** A job's schedules (next fire) and webhooks, for its page; empty when it has none. */
export function jobAutomation(job, { signal }) {
  const el = h('section', { class: 'job-automation', 'aria-labelledby': 'job-automation-title', hidden: true },
    h('h2', { id: 'job-automation-title' }, 'Automation'));
  const draw = async () => {
    const [schedules, hooks, base] = await Promise.all([
      optional('schedules', signal).catch(() => null), optional('hooks', signal).catch(() => null),
      publicBase()]);
    const mine = ((schedules && schedules.schedules) || []).filter((s) => s.job_id === job.id);
    const ours = ((hooks && hooks.hooks) || []).filter((hk) => hk.job === job.id);
    if (!mine.length && !ours.length) return;
    add(el, [
      mine.length ? [h('h3', null, 'Schedules'), h('div', { class: 'cards' }, mine.map((s, i) => scheduleCard(s, `job-${i}`, { showJob: false, compact: true, level: 4 })))] : null,
      ours.length ? [h('h3', null, 'Webhooks'), h('div', { class: 'cards' }, ours.map((hk, i) => hookCard(hk, `job-${i}`, signal, { showJob: false, level: 4, base })))] : null,
      h('p', null, h('a', { href: '#/automation' }, 'All schedules and webhooks'))]);
    el.hidden = false;
  };
  draw();
  return el;
}
