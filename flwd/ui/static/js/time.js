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

// -- other zones (a schedule's) --------------------------------------------------------------
const inZone = new Map(); // IANA zone → its formatter (null: this browser does not know it)

function zoneFormat(timeZone) {
  if (!inZone.has(timeZone)) {
    let format = null;
    try {
      format = new Intl.DateTimeFormat(undefined, {
        timeZone, weekday: 'short', year: 'numeric', month: '2-digit', day: '2-digit',
        hour: '2-digit', minute: '2-digit', hourCycle: 'h23', timeZoneName: 'short',
      });
    } catch (_) { /* a zone this browser's tables lack: the server's text is shown */ }
    inZone.set(timeZone, format);
  }
  return inZone.get(timeZone);
}

/** An instant on the clock of `timeZone` (an IANA name), e.g. "Mon, 01/04/2027, 02:30 CET";
 *  `fallback` (the server's own text of it) when the browser does not know that zone. */
export function zoneText(iso, timeZone, fallback = iso) {
  const date = new Date(iso);
  const format = zoneFormat(timeZone);
  if (!format || Number.isNaN(date.getTime())) return fallback;
  return format.format(date);
}

/**
 * A schedule's fire time twice: on its zone's clock, and on this browser's, each zone
 * named — `{utc, at}` as GET /schedules gives them (`at`: the schedule's wall clock).
 */
export function fireEl(fire, timeZone) {
  // The zone is named after the time, unless its short name ("UTC") already did.
  const named = (text, name) => [text, text.endsWith(' ' + name) ? null : h('span', { class: 'zone' }, ` (${name})`)];
  const there = h('time', { datetime: fire.utc, title: fire.utc }, named(zoneText(fire.utc, timeZone, fire.at), timeZone));
  const here = timeZone === zone ? h('span', { class: 'here' }, 'your zone too')
    : h('span', { class: 'here' }, named(zoneText(fire.utc, zone), zone));
  return h('span', { class: 'fire' }, there, here);
}
