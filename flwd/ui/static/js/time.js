// Times in the browser's zone, with the zone named (the server speaks UTC, RFC 3339).
import { h } from './dom.js';

export const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';

const stamp = new Intl.DateTimeFormat(undefined, {
  year: 'numeric', month: '2-digit', day: '2-digit',
  hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23', timeZoneName: 'short',
});
const clock = new Intl.DateTimeFormat(undefined, {
  hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23',
});

/** "Europe/Berlin (CET)": the zone every shown time is in. */
export function zoneLabel() {
  const part = stamp.formatToParts(new Date()).find((p) => p.type === 'timeZoneName');
  return part && part.value !== zone ? `${zone} (${part.value})` : zone;
}

/** A <time> element showing an RFC 3339 instant in the browser's zone (UTC in its title). */
export function timeEl(iso) {
  if (!iso) return h('span', {class: 'muted'}, '—');
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return h('span', null, iso);
  return h('time', {datetime: iso, title: iso}, stamp.format(date));
}

export function clockText(date) { return clock.format(date); }

/** 1234 → "1.2 s"; 75000 → "1 m 15 s". */
export function duration(ms) {
  if (ms === null || ms === undefined || !Number.isFinite(ms) || ms < 0) return '—';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} m ${Math.floor(s % 60)} s`;
  return `${Math.floor(m / 60)} h ${m % 60} m`;
}

/** A run's duration: finished − started, or now − started while it runs. */
export function runDuration(run, now = Date.now()) {
  if (!run.started_at) return null;
  const end = run.finished_at ? Date.parse(run.finished_at) : now;
  return end - Date.parse(run.started_at);
}

/** A datetime-local input's value (the browser's zone) → RFC 3339 in UTC. */
export function localToIso(value) {
  if (!value) return '';
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? '' : date.toISOString();
}

/** RFC 3339 → a datetime-local input's value in the browser's zone. */
export function isoToLocal(iso) {
  const date = new Date(iso);
  if (!iso || Number.isNaN(date.getTime())) return '';
  const pad = (n) => String(n).padStart(2, '0');
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}` +
    `T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}
