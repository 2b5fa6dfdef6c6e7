// A plan (POST /plans) as a person reads it: what runs, how, with which values.
import { h } from './dom.js';

function valueText(value) {
  return typeof value === 'string' ? value : JSON.stringify(value);
}

export function planView(plan) {
  const ex = plan.executor_preview || {};
  const facts = [
    ['Executor', [ex.executor, ex.interpreter, ex.runtime].filter(Boolean).join(', ')],
    ['Image', plan.container_image && (plan.container_image.image || plan.container_image.ref)],
    ['Timeout', plan.timeout_seconds ? `${plan.timeout_seconds} s` : 'none'],
    ['Security profile', plan.security_profile],
    ['On error', plan.error_handling && plan.error_handling.policy],
    ['Source', plan.provenance && plan.provenance.source &&
      `${plan.provenance.source.name} (${plan.provenance.source.type})`],
  ].filter(([, v]) => v);
  const args = Object.entries(plan.resolved_args || {});
  const findings = plan.policy_findings || [];
  return h('section', { class: 'plan', 'aria-label': 'Plan' },
    h('h3', null, `Plan of ${plan.job_id}`),
    h('dl', { class: 'facts' }, facts.map(([k, v]) => [h('dt', null, k), h('dd', null, String(v))])),
    h('h4', null, 'Steps'),
    h('ol', { class: 'plan-steps' }, (plan.steps || []).map((step) => h('li', null,
      h('strong', null, step.id), ' ', h('code', null, step.command || step.script || ''),
      step.needs && step.needs.length ? h('span', { class: 'muted' }, ` after ${step.needs.join(', ')}`) : null))),
    args.length ? [h('h4', null, 'Arguments'),
      h('table', { class: 'kv' }, h('tbody', null, args.map(([k, v]) =>
        h('tr', null, h('th', { scope: 'row' }, k), h('td', null, h('code', null, valueText(v)))))))] : null,
    findings.length ? [h('h4', null, 'Policy findings'),
      h('ul', null, findings.map((f) => h('li', null,
        typeof f === 'string' ? f : [f.severity || f.level || '', ' ', f.message || f.rule || JSON.stringify(f)])))] : null,
    h('details', null, h('summary', null, 'Plan as JSON'),
      h('pre', { class: 'code' }, JSON.stringify(plan, null, 2))));
}
