// What started a run (its `trigger`): a schedule's fire, a webhook's delivery, or a
// person through the API or the CLI (no trigger). One wording for the run page, the
// history and the automation page.
import { h } from './dom.js';
import { zoneText, timeEl } from './time.js';

/** The kind of a run's trigger as GET /runs?trigger= names it: schedule, hook or none. */
export function triggerKind(run) {
  const kind = run && run.trigger && run.trigger.kind;
  return kind === 'schedule' || kind === 'hook' ? kind : 'none';
}

/** A short word for a list: "schedule", "manual fire", "webhook", "API/CLI". */
export function triggerWord(run) {
  const trigger = run.trigger || {};
  switch (triggerKind(run)) {
    case 'schedule': return trigger.manual ? 'manual fire' : 'schedule';
    case 'hook': return 'webhook';
    default: return 'API/CLI';
  }
}

/** A badge for the history's Trigger column (its title names the schedule or hook). */
export function triggerBadge(run) {
  const trigger = run.trigger || {};
  const kind = triggerKind(run);
  return h('span', { class: `badge tr-${kind}`, title: trigger.name ? `${triggerWord(run)}: ${trigger.name}` : null },
    triggerWord(run));
}

/**
 * The run page's sentence: "scheduled: nightly, fire 02:30 … (Europe/Berlin)",
 * "manual fire of schedule nightly", "webhook: github-push, delivery 72d3…", or
 * "manual (the API or the CLI)". `zone`: the schedule's zone when known (GET /schedules),
 * else the fire time is shown in the browser's zone.
 */
export function triggerEl(run, zone) {
  const trigger = run.trigger;
  const kind = triggerKind(run);
  if (kind === 'schedule') {
    const name = h('a', { href: '#/automation?schedule=' + encodeURIComponent(trigger.name || '') }, trigger.name);
    if (trigger.manual) return h('span', { class: 'trigger' }, 'manual fire of schedule ', name);
    const fire = !trigger.fire_at ? null : zone
      ? h('time', { datetime: trigger.fire_at, title: trigger.fire_at }, `${zoneText(trigger.fire_at, zone)} (${zone})`)
      : timeEl(trigger.fire_at);
    return h('span', { class: 'trigger' }, 'scheduled: ', name, fire ? [', fire ', fire] : null);
  }
  if (kind === 'hook') {
    return h('span', { class: 'trigger' }, 'webhook: ',
      h('a', { href: '#/automation?hook=' + encodeURIComponent(trigger.name || '') }, trigger.name),
      trigger.delivery ? [', delivery ', h('code', null, trigger.delivery)] : ', no delivery id');
  }
  return h('span', { class: 'trigger muted' }, 'manual (the API or the CLI)');
}
