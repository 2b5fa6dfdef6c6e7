// The server at a glance: version, profile, runtime, storage health, this session.
import { h, heading, errorBox, badge } from './dom.js';
import { get, session, server } from './api.js';
import { zoneLabel, timeEl } from './time.js';

function bytes(n) {
  if (typeof n !== 'number') return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

function facts(pairs) {
  return h('dl', { class: 'facts' }, pairs.filter(([, v]) => v !== undefined && v !== null && v !== '')
    .map(([k, v]) => [h('dt', null, k), h('dd', null, v instanceof Node ? v : String(v))]));
}

export async function statusPage(view, { signal }) {
  view.append(heading('Status'));
  const info = await server();
  if (info) {
    const runtime = info.runtime || info.container_runtime;
    view.append(h('section', { 'aria-label': 'Server' }, h('h2', null, 'Server'), facts([
      ['Version', info.version],
      ['Profile', info.profile || info.security_profile],
      ['Runtime', typeof runtime === 'object' && runtime ? [runtime.name, runtime.version].filter(Boolean).join(' ') : runtime || 'none'],
      ['Python', info.python],
      ['Grace before KILL', info.grace_seconds !== undefined ? `${info.grace_seconds} s` : undefined],
      ['Started', info.started_at ? timeEl(info.started_at) : undefined],
      ['Data dir', info.data_dir],
      ['Workspace', info.workspace || info.scripts_root],
    ])));
  } else {
    view.append(h('p', { class: 'muted' }, 'This server does not describe itself (no GET /server).'));
  }
  const storage = h('section', { 'aria-label': 'Storage' }, h('h2', null, 'Storage'));
  view.append(storage);
  try {
    const s = await get('health/storage', { signal });
    storage.append(facts([
      ['Health', badge(s.ok ? 'ok' : 'degraded')],
      ['Driver', s.driver],
      ['Used', `${bytes(s.used_bytes ?? s.bytes_used)} of ${bytes(s.max_bytes)}`],
      ['Schema version', s.schema_version],
      ['Runs', s.runs],
      ['Events', s.events],
      ['Evicted runs', s.evicted_runs],
      ['Retention', s.retention ? JSON.stringify(s.retention) : 'none'],
    ]));
  } catch (err) {
    if (err.name === 'AbortError') return;
    // 503 storage-degraded is itself the answer.
    storage.append(errorBox(err));
  }
  const me = session.info || {};
  view.append(h('section', { 'aria-label': 'Your session' }, h('h2', null, 'Your session'), facts([
    ['Name', me.name],
    ['Scopes', (me.scopes || []).join(', ')],
    ['Expires', me.expires_at ? timeEl(me.expires_at) : (me.dev ? 'never (--dev)' : undefined)],
    ['Time zone', zoneLabel()],
  ])));
}
