// A run's page (its permalink, #/runs/<id>): facts, live output over SSE, steps, search,
// cancel with the TERM → grace → KILL ladder, re-run and edit-and-re-run, downloads.
//
// Output: first what the journal holds (events.ndjson, read as a stream: fast for a
// long log), then live over SSE after the last event seen. EventSource sends
// Last-Event-ID itself when it reconnects (a dropped connection, a restarted server);
// when it gives up (an HTTP error, a 503 while streams are busy) the page downloads what
// it missed and goes live again. Events are applied in seq order and any seq at or below
// the last one applied is dropped, so a replayed event never shows twice and none is
// skipped.
import { h, fill, badge, heading, errorBox, announce, hashFor, copyText } from './dom.js';
import { get, post, can, url, seg, server, idempotencyKey, ApiError, toLogin } from './api.js';
import { timeEl, duration, runDuration, clockText } from './time.js';
import { LogStore, LogView, STDERR, META, FAILED } from './log.js';
import { rerunValues } from './form.js';
import { triggerEl } from './trigger.js';
import { notificationsSection } from './notifications.js';

// interrupted: its flwd process died before it finished (marked so at the next start).
const TERMINAL = new Set(['completed', 'failed', 'canceled', 'interrupted']);
const TYPES = ['run.start', 'step.start', 'step.log', 'step.finish', 'run.canceled', 'run.finish',
  'policy.decision'];
const ERROR_WORDS = /\b(error|fatal|panic|exception|traceback)\b/i;

function escapeRe(text) { return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'); }

function download(path, name) {
  const a = h('a', { href: url(path), download: name, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
}

export async function runPage(view, { params, signal }) {
  const id = params[0];
  let run;
  try {
    run = await get(`runs/${seg(id)}`, { signal });
  } catch (err) {
    view.append(heading(`Run ${id}`), errorBox(err));
    return;
  }
  let job = null;
  get(`jobs/${seg(run.job_id)}`, { signal }).then((j) => { job = j; }, () => {});

  // -- facts --------------------------------------------------------------------------------
  const statusCell = h('dd');
  const durationCell = h('dd');
  const finishedCell = h('dd');
  const exitCell = h('dd');
  const startedCell = h('dd');
  const source = run.provenance && run.provenance.source;
  const args = Object.entries((run.result && run.result.resolved_args) || {});
  const permalink = location.origin + location.pathname + hashFor('runs', run.id);
  // A scheduled fire is shown on its schedule's clock, once GET /schedules/<name> says which.
  const triggerCell = h('dd', null, triggerEl(run, null));
  const scheduled = run.trigger && run.trigger.kind === 'schedule' && !run.trigger.manual && run.trigger.name;
  if (scheduled && can('jobs:read')) {
    get(`schedules/${seg(run.trigger.name)}`, { signal }).then(
      (schedule) => triggerCell.replaceChildren(triggerEl(run, schedule.timezone)), () => {});
  }
  const facts = h('dl', { class: 'facts' },
    h('dt', null, 'Job'), h('dd', null, h('a', { href: hashFor('jobs', run.job_id) }, run.job_id)),
    h('dt', null, 'Status'), statusCell,
    h('dt', null, 'Trigger'), triggerCell,
    h('dt', null, 'Created'), h('dd', null, timeEl(run.created_at)),
    h('dt', null, 'Started'), startedCell,
    h('dt', null, 'Finished'), finishedCell,
    h('dt', null, 'Duration'), durationCell,
    h('dt', null, 'Exit code'), exitCell,
    h('dt', null, 'Workspace'), h('dd', null, run.workspace || '—'),
    source ? [h('dt', null, 'Source'), h('dd', null, `${source.name} (${source.type})`)] : null,
    h('dt', null, 'Executor'), h('dd', null, [run.executor, run.runtime].filter(Boolean).join(', ') || '—'),
    h('dt', null, 'Arguments'), h('dd', null, args.length ? h('ul', { class: 'args' },
      args.map(([k, v]) => h('li', null, h('code', null, `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`))))
      : h('span', { class: 'muted' }, 'none')),
    h('dt', null, 'Permalink'), h('dd', null, h('a', { href: hashFor('runs', run.id) }, permalink)));

  const refreshFacts = () => {
    fill(statusCell, badge(run.status), run.error ? h('span', { class: 'muted' }, ' ' + run.error) : null);
    startedCell.replaceChildren(timeEl(run.started_at));
    finishedCell.replaceChildren(timeEl(run.finished_at));
    durationCell.textContent = duration(runDuration(run));
    exitCell.textContent = run.exit_code === undefined || run.exit_code === null ? '—' : String(run.exit_code);
    cancelButton.hidden = !can('runs:write') || TERMINAL.has(run.status);
  };

  // -- actions -------------------------------------------------------------------------------
  const actionAlert = h('div');
  const cancelButton = h('button', { type: 'button', class: 'danger' }, 'Cancel');
  const rerunButton = h('button', { type: 'button' }, 'Re-run');
  const editButton = h('button', { type: 'button' }, 'Edit and re-run');
  const logButton = h('button', { type: 'button' }, 'Download log');
  const ndjsonButton = h('button', { type: 'button' }, 'Download NDJSON');
  const linkButton = h('button', { type: 'button' }, 'Copy link');
  const writable = can('runs:write');
  const readsEvents = can('events:read');
  const actions = h('div', { class: 'actions' }, writable ? [cancelButton, rerunButton, editButton] : null,
    readsEvents ? [logButton, ndjsonButton] : null, linkButton);

  cancelButton.addEventListener('click', async () => {
    cancelButton.disabled = true;
    try {
      await post(`runs/${seg(run.id)}:cancel`);
      ladder.start(Date.now());
      announce('Cancel requested');
    } catch (err) {
      actionAlert.replaceChildren(errorBox(err));
    } finally {
      cancelButton.disabled = false;
    }
  });
  const editUrl = hashFor('jobs', run.job_id, { rerun: run.id });
  editButton.addEventListener('click', () => { location.hash = editUrl; });
  rerunButton.addEventListener('click', async () => {
    // Secrets are never kept: a run that had one is started again from its form.
    if (args.some(([, v]) => v === '[secret]')) {
      location.hash = editUrl;
      return;
    }
    rerunButton.disabled = true;
    try {
      const again = await post('runs', { job_id: run.job_id, args: rerunValues(job, run) },
        { headers: { 'Idempotency-Key': idempotencyKey() } });
      location.hash = hashFor('runs', again.id);
    } catch (err) {
      actionAlert.replaceChildren(errorBox(err, 'Re-run refused: '),
        h('p', null, h('a', { href: editUrl }, 'Edit the arguments and run again')));
    } finally {
      rerunButton.disabled = false;
    }
  });
  logButton.addEventListener('click', () => download(`runs/${seg(run.id)}/log.txt`, `${run.id}.log`));
  ndjsonButton.addEventListener('click', () => download(`runs/${seg(run.id)}/events.ndjson`, `${run.id}.ndjson`));
  linkButton.addEventListener('click', async () => {
    announce(await copyText(permalink) ? 'Link copied' : 'Copy the permalink shown above');
  });

  // -- cancel ladder -------------------------------------------------------------------------
  // The grace is the server's (FLWD_GRACE, 5 s unless set); GET /server says which.
  const ladder = cancelLadder(5, signal);
  server().then((info) => {
    const grace = Number(info && (info.grace_seconds ?? info.grace));
    if (grace > 0) ladder.setGrace(grace);
  });

  // -- steps and log -------------------------------------------------------------------------
  const store = new LogStore();
  const steps = []; // [{name, status, first, firstErr, ms, exit}] (index + 1 = step number)
  const stepNo = new Map();
  let multi = false;
  const stepNumber = (name) => {
    if (!stepNo.has(name)) {
      steps.push({ name, status: 'pending', first: -1, firstErr: -1 });
      stepNo.set(name, steps.length);
      stepsChanged();
    }
    return stepNo.get(name);
  };
  let firstErr = -1;
  let firstFailedStep = 0;
  const follow = h('button', { type: 'button', 'aria-pressed': 'true' }, 'Follow');
  const logView = new LogView(store, {
    stepName: (i) => (multi ? steps[i - 1].name : ''),
    onFollow: (on) => follow.setAttribute('aria-pressed', String(on)),
  });
  follow.addEventListener('click', () => logView.setFollow(follow.getAttribute('aria-pressed') !== 'true'));

  const stepList = h('ol', { class: 'steps' });
  const stepFilter = h('select', { id: 'step-filter' }, h('option', { value: '0' }, 'All steps'));
  const stepFilterBox = h('span', { class: 'inline', hidden: true }, h('label', { for: 'step-filter' }, 'Show step'), stepFilter);
  stepFilter.addEventListener('change', () => logView.setFilter(Number(stepFilter.value)));
  const stepsSection = h('section', { class: 'steps-box', 'aria-label': 'Steps', hidden: true },
    h('h2', null, 'Steps'), stepList);
  function stepsChanged() {
    multi = steps.length > 1;
    logView.el.style.setProperty('--sn', `${Math.max(0, ...steps.map((s) => s.name.length)) + 1}ch`);
    stepsSection.hidden = !multi;
    stepFilterBox.hidden = !multi;
    stepList.replaceChildren(...steps.map((s, i) => h('li', { class: 'step' },
      h('button', { type: 'button', class: 'link', onclick: () => { if (s.first >= 0) logView.reveal(s.first); } }, s.name),
      ' ', badge(s.status), s.ms !== undefined ? h('span', { class: 'muted' }, ' ' + duration(s.ms)) : null)));
    while (stepFilter.options.length - 1 < steps.length) {
      const s = steps[stepFilter.options.length - 1];
      stepFilter.append(h('option', { value: String(stepFilter.options.length) }, s.name));
    }
  }

  const search = h('input', { type: 'search', id: 'log-search', placeholder: 'text', autocomplete: 'off' });
  const matchInfo = h('span', { class: 'muted', 'aria-live': 'polite' });
  const prevButton = h('button', { type: 'button' }, 'Previous match');
  const nextButton = h('button', { type: 'button' }, 'Next match');
  const errButton = h('button', { type: 'button' }, 'Jump to first error');
  let matches = [];
  let matchAt = -1;
  let searched = '';
  const runSearch = () => {
    const query = search.value;
    searched = query;
    if (!query) { matches = []; matchAt = -1; logView.setHighlight(null); matchInfo.textContent = ''; return; }
    const flags = query === query.toLowerCase() ? 'gi' : 'g'; // smart case
    const re = new RegExp(escapeRe(query), flags);
    matches = store.find(re);
    if (logView.index) matches = matches.filter((l) => store.steps[l] === logView.filterStep);
    logView.setHighlight(new RegExp(escapeRe(query), flags));
    matchAt = -1;
    matchInfo.textContent = matches.length ? `${matches.length} lines match` : 'no match';
  };
  const move = (delta) => {
    if (search.value !== searched || !matches.length) runSearch();
    if (!matches.length) return;
    matchAt = (matchAt + delta + matches.length) % matches.length;
    logView.reveal(matches[matchAt]);
    matchInfo.textContent = `line ${matches[matchAt] + 1}: match ${matchAt + 1} of ${matches.length}`;
  };
  search.addEventListener('keydown', (e) => { if (e.key === 'Enter') { e.preventDefault(); move(e.shiftKey ? -1 : 1); } });
  nextButton.addEventListener('click', () => move(1));
  prevButton.addEventListener('click', () => move(-1));
  errButton.addEventListener('click', () => {
    let line = -1;
    if (firstFailedStep) {
      const s = steps[firstFailedStep - 1];
      line = s.firstErr >= 0 ? s.firstErr : s.finishLine ?? s.first;
    }
    if (line < 0) line = firstErr;
    if (line < 0) {
      const hits = store.find(new RegExp(ERROR_WORDS.source, 'gi'), 1);
      if (hits.length) line = hits[0];
    }
    if (line < 0) { announce('No error in the output'); matchInfo.textContent = 'no error found'; return; }
    logView.reveal(line);
    matchInfo.textContent = `first error: line ${line + 1}`;
    logView.el.focus();
  });

  const titleBadge = h('span', { class: 'title-badge' });
  const connection = h('span', { class: 'conn', role: 'status' });
  const toolbar = h('div', { class: 'log-tools', role: 'toolbar', 'aria-label': 'Log tools' },
    h('label', { for: 'log-search' }, 'Search log'), search, prevButton, nextButton, matchInfo,
    errButton, stepFilterBox, follow, connection);

  const notes = notificationsSection(run, { signal });
  view.append(
    h('div', { class: 'title-row' }, heading(`Run ${run.id}`), titleBadge),
    actions, actionAlert, ladder.el,
    h('div', { class: 'run-grid' }, h('section', { 'aria-label': 'Details' }, facts), stepsSection),
    notes.el,
    h('section', { class: 'output', 'aria-label': 'Output' }, h('h2', null, 'Output'),
      readsEvents ? [toolbar, logView.el]
        : h('p', { class: 'muted' }, 'Your session may not read events (scope events:read): no output shown.')));
  const refreshAll = () => {
    refreshFacts();
    titleBadge.replaceChildren(badge(run.status));
    notes.update(run);
  };
  refreshAll();
  const ticker = setInterval(() => { if (!TERMINAL.has(run.status)) durationCell.textContent = duration(runDuration(run)); }, 1000);
  signal.addEventListener('abort', () => clearInterval(ticker));
  if (!readsEvents) return;

  // -- events --------------------------------------------------------------------------------
  let lastSeq = 0;
  let finished = false;
  const meta = (text, flags = 0, step = 0) => store.push(text, META | flags, step);
  const apply = (ev) => {
    const d = ev.data || {};
    switch (ev.type) {
      case 'step.log': {
        const n = stepNumber(d.step);
        const flags = d.channel === 'stderr' ? STDERR : 0;
        const text = String(d.message ?? '');
        const parts = text.includes('\n') ? text.split('\n') : [text];
        for (const part of parts) {
          const line = store.push(part, flags, n);
          if (flags) {
            if (firstErr < 0) firstErr = line;
            if (steps[n - 1].firstErr < 0) steps[n - 1].firstErr = line;
          }
        }
        return;
      }
      case 'run.start':
        run.status = 'running';
        run.started_at = d.started_at || ev.ts;
        for (const name of d.steps || []) stepNumber(name);
        meta(`run started (${[d.executor, d.composition].filter(Boolean).join(', ')})`);
        break;
      case 'step.start': {
        const n = stepNumber(d.step);
        const s = steps[n - 1];
        s.status = 'running';
        const attempt = d.max_attempts > 1 ? ` (attempt ${d.attempt}/${d.max_attempts})` : '';
        const line = meta(`▶ ${d.step} started${attempt}`, 0, n);
        if (s.first < 0) s.first = line;
        stepsChanged();
        break;
      }
      case 'step.finish': {
        const n = stepNumber(d.step);
        const s = steps[n - 1];
        s.status = d.status;
        s.ms = d.duration_ms;
        const failed = d.status === 'failed';
        const mark = { completed: '✔', failed: '✖', skipped: '⊘', canceled: '■' }[d.status] || '•';
        const bits = [d.exit_code !== undefined ? `exit ${d.exit_code}` : '', d.signal || '',
          d.duration_ms !== undefined ? duration(d.duration_ms) : '', d.reason || d.error || ''].filter(Boolean);
        const line = meta(`${mark} ${d.step} ${d.status}${bits.length ? ' — ' + bits.join(', ') : ''}`, failed ? FAILED : 0, n);
        if (s.first < 0) s.first = line;
        s.finishLine = line;
        if (failed && !firstFailedStep) firstFailedStep = n;
        if (d.signal) ladder.signal(d.signal);
        stepsChanged();
        break;
      }
      case 'run.canceled':
        ladder.start(Date.parse(ev.ts) || Date.now(), true);
        meta(`■ run canceled: ${d.reason || 'canceled'}${d.by ? ' (by ' + d.by + ')' : ''}`);
        break;
      case 'policy.decision':
        meta(`policy: ${d.message || d.reason || d.decision || JSON.stringify(d)}`);
        break;
      case 'run.finish':
        run.status = d.status;
        run.finished_at = d.finished_at || ev.ts;
        if (d.exit_code !== undefined) run.exit_code = d.exit_code;
        if (d.error) run.error = d.error;
        meta(`run ${d.status}${d.exit_code !== undefined ? ' — exit ' + d.exit_code : ''}${d.error ? ' — ' + d.error : ''}`,
          d.status === 'failed' || d.status === 'interrupted' ? FAILED : 0);
        ladder.finish(Date.parse(ev.ts) || Date.now(), d.status);
        finished = true;
        break;
      default:
        return;
    }
    refreshAll();
  };

  const setConn = (text) => { connection.textContent = text; };
  const ingest = (ev) => {
    if (!(ev.seq > lastSeq)) return; // replayed: applied already
    lastSeq = ev.seq;
    apply(ev);
  };
  const applied = (before) => {
    if (store.n !== before) logView.appended(before);
    if (finished) {
      setConn('finished');
      announce(`Run ${run.status}`);
    }
  };

  // What the journal holds after lastSeq, as one NDJSON download: EventSource
  // dispatches one event at a time (about 12,000 a second), a stream read in 64 KiB
  // pieces is an order of magnitude faster — a long log's history loads in seconds.
  const backlog = async () => {
    const response = await fetch(url(`runs/${seg(run.id)}/events.ndjson${lastSeq ? '?after=' + lastSeq : ''}`),
      { credentials: 'same-origin', signal, headers: { Accept: 'application/x-ndjson' } });
    if (!response.ok) {
      let problem = { title: `HTTP ${response.status}` };
      try { problem = await response.json(); } catch (_) { /* not a problem document */ }
      throw new ApiError(response.status, problem);
    }
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let rest = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      const before = store.n;
      const lines = (rest + value).split('\n');
      rest = lines.pop();
      for (const line of lines) if (line) ingest(JSON.parse(line));
      applied(before);
    }
    if (rest) { const before = store.n; ingest(JSON.parse(rest)); applied(before); }
  };

  // Then live: the SSE stream after the last event seen. EventSource reconnects by
  // itself with Last-Event-ID; this resolves when it gives up (an HTTP error) or the
  // run finished.
  let source_ = null;
  const live = () => new Promise((resolve) => {
    source_ = new EventSource(url(`runs/${seg(run.id)}/events?after=${lastSeq}`));
    const onEvent = (message) => {
      let ev;
      try { ev = JSON.parse(message.data); } catch (_) { return; }
      const before = store.n;
      ingest(ev);
      applied(before);
      if (finished) { source_.close(); resolve(); }
    };
    for (const type of TYPES) source_.addEventListener(type, onEvent);
    source_.onopen = () => setConn('live');
    source_.onerror = () => {
      setConn('reconnecting…');
      if (source_.readyState === EventSource.CLOSED) resolve();
    };
    signal.addEventListener('abort', () => { source_.close(); resolve(); });
  });

  const wait = (ms) => new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => { clearTimeout(timer); resolve(); });
  });
  let retry = 0;
  while (!finished && !signal.aborted) {
    setConn(lastSeq ? 'catching up…' : 'loading…');
    try {
      await backlog();
      retry = 0;
    } catch (err) {
      if (signal.aborted) return;
      if (err instanceof ApiError && [401, 403, 404, 410].includes(err.status)) {
        if (err.status === 401) toLogin();
        setConn('');
        actionAlert.replaceChildren(errorBox(err, 'Output: '));
        return;
      }
      // The server is away (restarting) or busy (503): try again, gently.
      setConn('reconnecting…');
      await wait(Math.min(10000, 500 * 2 ** retry++));
      continue;
    }
    if (finished || signal.aborted) break;
    await live();
    if (!finished && !signal.aborted) await wait(Math.min(10000, 500 * 2 ** retry++));
  }
}

/** The TERM → grace → KILL ladder of a cancelled run, with the grace counting down. */
export function cancelLadder(initialGrace, signal) {
  let grace = initialGrace;
  const term = h('li', null, 'TERM sent');
  const wait = h('li', null, `grace period (${grace} s)`);
  const kill = h('li', null, 'KILL');
  const outcome = h('p', { class: 'muted' });
  const el = h('section', { class: 'ladder', 'aria-label': 'Cancel progress', hidden: true },
    h('h2', null, 'Cancelling'), h('ol', null, term, wait, kill), outcome);
  let termAt = 0; // when TERM went, on this browser's clock (the countdown)
  let serverTermAt = 0; // the same on the server's clock (run.canceled's ts)
  let timer = 0;
  let done = false;
  let killSignal = false;
  const tick = () => {
    const left = Math.max(0, grace - (Date.now() - termAt) / 1000);
    if (left > 0) {
      wait.textContent = `grace period: ${Math.ceil(left)} s left of ${grace} s`;
      wait.className = 'active';
    } else {
      wait.textContent = `grace period (${grace} s) over`;
      wait.className = 'done';
      kill.textContent = 'KILL sent to what is left';
      kill.className = 'active';
      clearInterval(timer);
    }
  };
  signal.addEventListener('abort', () => clearInterval(timer));
  return {
    el,
    /** TERM went at `at`: by the server's clock when `fromServer` (the run.canceled event),
     *  else the browser's (the cancel request's answer, a little later). */
    start(at, fromServer = false) {
      if (done) return;
      if (fromServer) serverTermAt = at;
      if (termAt) {
        termAt = Math.min(termAt, at);
        return;
      }
      termAt = Math.min(at, Date.now());
      el.hidden = false;
      term.textContent = `TERM sent at ${clockText(new Date(termAt))}`;
      term.className = 'done';
      tick();
      timer = setInterval(tick, 250);
    },
    signal(name) { if (name === 'SIGKILL') killSignal = true; },
    setGrace(seconds) {
      grace = seconds;
      if (!termAt) wait.textContent = `grace period (${grace} s)`;
    },
    finish(at, status) {
      if (done) return;
      done = true;
      clearInterval(timer);
      if (!termAt) return;
      // run.finish's time is the server's: measured from the server's TERM when known.
      const after = Math.max(0, (at - (serverTermAt || termAt)) / 1000);
      const killed = killSignal || after >= grace;
      el.querySelector('h2').textContent = status === 'canceled' ? 'Canceled' : `Finished (${status})`;
      wait.className = 'done';
      wait.textContent = killed ? `grace period (${grace} s) over` : `ended within the grace period (${after.toFixed(1)} s)`;
      kill.className = killed ? 'done' : 'skipped';
      kill.textContent = killed ? 'KILL sent to what was left' : 'KILL not needed';
      outcome.textContent = `The run ended ${after.toFixed(1)} s after TERM.`;
    },
  };
}
