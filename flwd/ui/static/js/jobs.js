// The jobs list (search, grouped by folder or source, aliases shown) and a job's page.
import { h, add, heading, errorBox, hashFor } from './dom.js';
import { get, seg, can } from './api.js';
import { jobForm, rerunValues } from './form.js';
import { jobAutomation } from './automation.js';
import { fireEl, timeEl } from './time.js';

/** The group a job is listed under: its source, or the folder of its path. */
function groupOf(job) {
  if (job.source && job.source.name) return `source ${job.source.name}`;
  const path = job.path || job.id;
  const cut = path.lastIndexOf('/');
  return cut > 0 ? path.slice(0, cut) + '/' : 'scripts/';
}

export async function jobsPage(view, { query, signal }) {
  const title = heading('Jobs');
  view.append(title);
  let jobs;
  try {
    jobs = await get('jobs', { signal });
  } catch (err) {
    view.append(errorBox(err));
    return;
  }
  const aliases = new Map(); // target id → [alias ids]
  const real = [];
  for (const job of jobs) {
    if (job.alias_of) {
      if (!aliases.has(job.alias_of)) aliases.set(job.alias_of, []);
      aliases.get(job.alias_of).push(job);
    } else {
      real.push(job);
    }
  }
  // An alias whose target is not listed is listed by itself.
  const ids = new Set(real.map((j) => j.id));
  for (const [target, list] of aliases) if (!ids.has(target)) real.push(...list.map((a) => ({ ...a, alias_of: undefined, aliasOf: target })));

  const search = h('input', { type: 'search', id: 'job-search', autocomplete: 'off', value: query.get('q') || '' });
  const count = h('p', { class: 'muted', 'aria-live': 'polite' });
  const list = h('div', { class: 'job-groups' });
  const haystack = (job) => [job.id, job.name, job.summary, job.description, job.path,
    ...(aliases.get(job.id) || []).map((a) => a.id)].filter(Boolean).join(' ').toLowerCase();
  const draw = () => {
    const words = search.value.toLowerCase().split(/\s+/).filter(Boolean);
    const shown = real.filter((job) => { const text = haystack(job); return words.every((w) => text.includes(w)); });
    const groups = new Map();
    for (const job of shown) {
      const g = groupOf(job);
      if (!groups.has(g)) groups.set(g, []);
      groups.get(g).push(job);
    }
    list.replaceChildren(...[...groups.keys()].sort().map((g) => h('section', { class: 'group', 'aria-label': g },
      h('h2', null, g),
      h('ul', { class: 'job-list' }, groups.get(g).sort((a, b) => a.id.localeCompare(b.id)).map((job) => {
        const also = aliases.get(job.id) || [];
        return h('li', null,
          h('a', { href: hashFor('jobs', job.id), class: 'job-link' }, h('strong', null, job.id),
            job.name && job.name !== job.id ? h('span', null, ' — ' + job.name) : null),
          job.summary || job.description ? h('p', { class: 'muted' }, job.summary || job.description) : null,
          job.aliasOf ? h('p', { class: 'aliases' }, `alias of ${job.aliasOf}`) : null,
          job.next_fire ? h('p', { class: 'aliases' }, `next fire (${job.next_fire.schedule}): `, timeEl(job.next_fire.utc)) : null,
          also.length ? h('p', { class: 'aliases' }, 'aliases: ', also.map((a, i) => [i ? ', ' : '',
            h('a', { href: hashFor('jobs', a.id) }, a.id)])) : null);
      })))));
    count.textContent = `${shown.length} of ${real.length} jobs`;
  };
  search.addEventListener('input', () => {
    draw();
    // Keep the search in the address (a link to a filtered list) without a new history entry.
    const q = search.value ? '?q=' + encodeURIComponent(search.value) : '';
    history.replaceState(null, '', '#/jobs' + q);
  });
  view.append(h('div', { class: 'search-row' }, h('label', { for: 'job-search' }, 'Search jobs'), search), count, list);
  draw();
  // When the list is on screen (the load-time measurement reads it).
  performance.mark('flwd:jobs-ready');
}

export async function jobPage(view, { params, query, signal }) {
  const id = params[0];
  let job;
  try {
    job = await get(`jobs/${seg(id)}`, { signal });
  } catch (err) {
    view.append(heading(id), errorBox(err));
    return;
  }
  let initial = {};
  let note = null;
  const rerun = query.get('rerun');
  if (rerun) {
    try {
      const run = await get(`runs/${seg(rerun)}`, { signal });
      initial = rerunValues(job, run);
      const hadSecret = Object.values((run.result && run.result.resolved_args) || {}).includes('[secret]');
      note = h('p', { class: 'note' }, 'Pre-filled from run ', h('a', { href: hashFor('runs', rerun) }, rerun), '.',
        hadSecret ? ' Secrets are never kept: enter them again.' : '');
    } catch (err) {
      note = errorBox(err, `Run ${rerun}: `);
    }
  }
  const source = job.source && job.source.name;
  add(view, [
    heading(job.name && job.name !== job.id ? `${job.name} (${job.id})` : job.id),
    job.summary ? h('p', { class: 'lead' }, job.summary) : null,
    job.description && job.description !== job.summary ? h('p', null, job.description) : null,
    h('dl', { class: 'facts' },
      h('dt', null, 'Id'), h('dd', null, h('code', null, job.id)),
      job.alias_of ? [h('dt', null, 'Alias of'), h('dd', null, h('a', { href: hashFor('jobs', job.alias_of) }, job.alias_of))] : null,
      h('dt', null, 'Path'), h('dd', null, job.path || '—'),
      source ? [h('dt', null, 'Source'), h('dd', null, `${source} (${job.source.type})`)] : null,
      job.next_fire ? [h('dt', null, 'Next fire'), h('dd', null, fireEl(job.next_fire, job.next_fire.timezone),
        h('span', { class: 'muted' }, ` (schedule ${job.next_fire.schedule})`))] : null),
    can('runs:read') ? h('p', null, h('a', { href: '#/runs?' + new URLSearchParams({ job_id: job.id }) }, 'Runs of this job')) : null,
    jobAutomation(job, { signal }),
    h('h2', null, 'Run it'),
    jobForm(job, { initial, note })]);
}
