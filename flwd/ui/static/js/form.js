// A job's argspec → a form: one control per argument, typed; checks that mirror the
// server's (flwd/jobs/_argspec.py, _bind.py) so a mistake shows before anything is sent;
// the server's own problem (errors[{arg, message}]) shown next to the fields; plan
// preview, run, and "Copy as CLI" / "Copy as curl" with secrets as placeholders.
//
// Secrets: a password input, never pre-filled, emptied once a run was started; the value
// goes only into the POST body (never the URL, the page's storage, or a copied command).
import { h, add, announce, errorBox, copyText, shq } from './dom.js';
import { post, can, idempotencyKey, url } from './api.js';
import { planView } from './plan.js';

const INT_RE = /^[+-]?[0-9]+$/;
const NUM_RE = /^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$/;
const TRUE = new Set(['true', 'yes', '1', 'on']);
const FALSE = new Set(['false', 'no', '0', 'off']);
const ARTICLE = { string: 'a string', integer: 'an integer', number: 'a number', boolean: 'a boolean' };
const ABSENT = Symbol('absent');

export const isSecret = (arg) => arg.secret === true || arg.format === 'secret';

/** A value as a user types it (the server's `plain`). */
export function plain(value) { return typeof value === 'string' ? value : JSON.stringify(value); }

function show(value) {
  const text = typeof value === 'string' ? `'${value.slice(0, 80)}'` : plain(value);
  return text.length <= 80 ? text : text.slice(0, 79) + '…';
}

function same(a, b) { return JSON.stringify(a) === JSON.stringify(b); }

function hasDefault(arg) { return 'default' in arg && arg.default !== null; }

/** Text → a value of `kind` (the CLI's coercion: the form's inputs are text). */
function parse(kind, text, secret = false) {
  if (kind === 'string') return { value: text };
  const shown = secret ? '' : show(text) + ' ';
  if (kind === 'integer') {
    if (!INT_RE.test(text)) return { error: `${shown}is not an integer` };
    const value = Number(text);
    if (!Number.isSafeInteger(value)) return { error: `${shown}is too large for a browser form (at most ±9007199254740991)` };
    return { value };
  }
  if (kind === 'number') {
    const value = Number(text);
    if (!NUM_RE.test(text) || !Number.isFinite(value)) return { error: `${shown}is not a number` };
    return { value };
  }
  const folded = text.trim().toLowerCase();
  if (TRUE.has(folded)) return { value: true };
  if (FALSE.has(folded)) return { value: false };
  return { error: `${shown}is not a boolean` };
}

let patterns = new Map();
function regex(pattern) {
  // The server matches Python's re.fullmatch; a pattern JavaScript cannot read is left to it.
  if (!patterns.has(pattern)) {
    let re = null;
    try { re = new RegExp(`^(?:${pattern})$`, 'u'); } catch (_) { /* checked by the server */ }
    patterns.set(pattern, re);
  }
  return patterns.get(pattern);
}

/** The argument's constraints on a typed value (the server's constraint_problems). */
function constraints(arg, value) {
  const secret = isSecret(arg);
  const problems = [];
  const listed = (choices) => choices.map(plain).join(', ');
  if (arg.enum && ['string', 'integer', 'number'].includes(arg.type) && !arg.enum.some((c) => same(c, value))) {
    problems.push(`${secret ? '[secret]' : show(value)} is not one of: ${listed(arg.enum)}`);
  }
  if (arg.type === 'array' && arg.items_enum) {
    for (const item of value) {
      if (!arg.items_enum.some((c) => same(c, item))) problems.push(`item ${show(item)} is not one of: ${listed(arg.items_enum)}`);
    }
  }
  if (arg.type === 'integer' || arg.type === 'number') {
    if (arg.minimum !== undefined && value < arg.minimum) problems.push(`must be at least ${arg.minimum} (got ${value})`);
    if (arg.maximum !== undefined && value > arg.maximum) problems.push(`must be at most ${arg.maximum} (got ${value})`);
  }
  if (arg.type === 'string') {
    const length = [...value].length; // code points, as Python counts
    const got = secret ? '' : ` (got ${length})`;
    if (arg.minLength !== undefined && length < arg.minLength) problems.push(`must be at least ${arg.minLength} characters long${got}`);
    if (arg.maxLength !== undefined && length > arg.maxLength) problems.push(`must be at most ${arg.maxLength} characters long${got}`);
    const re = arg.pattern !== undefined ? regex(arg.pattern) : null;
    if (re && !re.test(value)) problems.push(`${secret ? 'value' : show(value)} does not match pattern '${arg.pattern}'`);
  }
  return problems;
}

/** What a type says in the field's head: "integer · 1–125", "array of string". */
function typeText(arg) {
  let text = arg.type;
  if (arg.type === 'array') text = `list of ${arg.items_type || 'string'}`;
  if (arg.type === 'object') text = `key=value pairs, values ${arg.value_type || 'string'}`;
  if (isSecret(arg)) text += ', secret';
  else if (arg.format) text += `, ${arg.format}`;
  if (arg.minimum !== undefined || arg.maximum !== undefined) text += ` · ${arg.minimum ?? '…'} to ${arg.maximum ?? '…'}`;
  if (arg.minLength !== undefined || arg.maxLength !== undefined) text += ` · ${arg.minLength ?? 0} to ${arg.maxLength ?? '…'} characters`;
  if (arg.pattern !== undefined) text += ` · pattern ${arg.pattern}`;
  return text;
}

/** An input (or a select, for enums and booleans) for one scalar of `kind`. */
function scalarInput(kind, choices, attrs, arg, none = true) {
  if (choices || kind === 'boolean') {
    const options = choices || [true, false];
    const select = h('select', attrs, none ? h('option', { value: '' }, '(none)') : null,
      options.map((choice, i) => h('option', { value: String(i) }, plain(choice))));
    return {
      el: select,
      read: () => (select.value === '' ? ABSENT : { value: options[Number(select.value)] }),
      fill: (value) => {
        const i = options.findIndex((c) => same(c, value));
        select.value = i < 0 ? '' : String(i);
      },
    };
  }
  const input = h('input', { ...attrs, autocomplete: 'off', spellcheck: 'false' });
  if (kind === 'integer' || kind === 'number') {
    input.type = 'number';
    input.step = kind === 'integer' ? '1' : 'any';
    if (arg && arg.minimum !== undefined) input.min = String(arg.minimum);
    if (arg && arg.maximum !== undefined) input.max = String(arg.maximum);
  } else {
    input.type = 'text';
  }
  return {
    el: input,
    read: () => {
      if (input.validity && input.validity.badInput) return { error: `is not ${ARTICLE[kind]}` };
      return input.value === '' ? ABSENT : parse(kind, input.value);
    },
    fill: (value) => { input.value = value === undefined || value === null ? '' : plain(value); },
  };
}

/** One field of the form: {el, read() → {value}|{error}|ABSENT, fill(v), setError(msg), focus()}. */
function field(arg) {
  const name = arg.name;
  const id = `arg-${name}`;
  const helpId = `help-${name}`;
  const errId = `err-${name}`;
  const described = [arg.description ? helpId : null, errId].filter(Boolean).join(' ');
  const grouped = (arg.enum && arg.enum.length <= 5) || arg.type === 'array' || arg.type === 'object';
  const label = grouped && !(arg.type === 'array' || arg.type === 'object')
    ? h('span', { class: 'label', id: `label-${name}` }, name)
    : h('label', { for: id, id: `label-${name}` }, name);
  const err = h('p', { class: 'field-error', id: errId, hidden: true });
  const head = h('div', { class: 'field-head' }, label,
    arg.required ? h('span', { class: 'req' }, 'required') : null,
    h('span', { class: 'type' }, typeText(arg)));
  const el = h('div', { class: 'field', id: `field-${name}` }, head);
  let control;
  let focusable;
  const common = { 'aria-describedby': described };

  if (arg.type === 'boolean') {
    const box = h('input', { type: 'checkbox', id, ...common });
    box.checked = arg.default === true;
    control = { el: h('div', { class: 'check' }, box, h('span', { class: 'muted' }, 'yes')),
      read: () => ({ value: box.checked }), fill: (v) => { box.checked = v === true; } };
    focusable = box;
  } else if (arg.enum && arg.enum.length <= 5) {
    control = radios(arg, common);
    focusable = control.first;
  } else if (arg.type === 'array') {
    control = repeated(arg, common);
    focusable = control.first;
  } else if (arg.type === 'object') {
    control = pairs(arg, common);
    focusable = control.first;
  } else if (isSecret(arg)) {
    const input = h('input', { type: 'password', id, autocomplete: 'off', ...common });
    control = { el: input, read: () => (input.value === '' ? ABSENT : { value: input.value }),
      fill: () => {}, clear: () => { input.value = ''; } };
    focusable = input;
  } else {
    const attrs = { id, ...common };
    if (arg.required) attrs['aria-required'] = 'true';
    if (arg.maxLength !== undefined) attrs.maxlength = String(arg.maxLength);
    control = scalarInput(arg.type, arg.enum, attrs, arg, !hasDefault(arg));
    focusable = control.el;
  }
  add(el, [control.el,
    arg.description ? h('p', { class: 'help', id: helpId }, arg.description) : null, err]);
  if (!isSecret(arg) && hasDefault(arg)) control.fill(arg.default);

  const setError = (message) => {
    err.hidden = !message;
    err.textContent = message || '';
    el.classList.toggle('invalid', !!message);
    for (const c of el.querySelectorAll('input, select')) {
      if (message) c.setAttribute('aria-invalid', 'true'); else c.removeAttribute('aria-invalid');
    }
  };
  return { arg, el, control, setError, focus: () => focusable && focusable.focus() };
}

function radios(arg, common) {
  const name = `arg-${arg.name}`;
  // "(none)" only where leaving it unset means something: optional, without a default.
  const choices = arg.required || hasDefault(arg) ? arg.enum : [ABSENT, ...arg.enum];
  const inputs = choices.map((choice, i) => h('input', { type: 'radio', name, value: String(i) }));
  const group = h('div', { role: 'radiogroup', class: 'choices', 'aria-labelledby': `label-${arg.name}`,
    ...common }, choices.map((choice, i) => h('label', { class: 'choice' }, inputs[i],
    choice === ABSENT ? h('span', { class: 'muted' }, '(none)') : plain(choice))));
  const fill = (value) => {
    const i = choices.findIndex((c) => c !== ABSENT && same(c, value));
    if (i >= 0) inputs[i].checked = true;
    else if (choices[0] === ABSENT) inputs[0].checked = true;
  };
  fill(undefined);
  return { el: group, first: inputs[0], fill,
    read: () => {
      const i = inputs.findIndex((input) => input.checked);
      return i < 0 || choices[i] === ABSENT ? ABSENT : { value: choices[i] };
    } };
}

/** An array: one input per item, "Add NAME" for more; an empty input is no item. */
function repeated(arg, common) {
  const kind = arg.items_type || 'string';
  const list = h('div', { class: 'items' });
  let rows = [];
  const render = (values) => {
    list.replaceChildren();
    rows = values.map((value, i) => {
      const attrs = i === 0 ? { id: `arg-${arg.name}`, ...common } : { 'aria-label': `${arg.name} ${i + 1}` };
      const input = scalarInput(kind, arg.items_enum, attrs);
      input.fill(value);
      const remove = h('button', { type: 'button', class: 'icon', 'aria-label': `Remove item ${i + 1}`,
        title: 'Remove', onclick: () => {
          const current = rows.map((r) => r.raw());
          current.splice(i, 1);
          render(current.length ? current : [undefined]);
          rows[Math.min(i, rows.length - 1)].input.el.focus();
        } }, '×');
      list.append(h('div', { class: 'item' }, input.el, remove));
      return { input, raw: () => { const r = input.read(); return r === ABSENT || r.error ? rawText(input.el) : r.value; } };
    });
  };
  const rawText = (el) => (el.tagName === 'SELECT' ? undefined : el.value);
  render([undefined]);
  const more = h('button', { type: 'button', class: 'add' }, `Add ${arg.name}`);
  more.addEventListener('click', () => {
    render([...rows.map((r) => r.raw()), undefined]);
    rows[rows.length - 1].input.el.focus();
  });
  return {
    el: h('div', null, list, more),
    get first() { return rows[0].input.el; },
    fill: (values) => render(Array.isArray(values) && values.length ? values : [undefined]),
    read: () => {
      const items = [];
      const errors = [];
      for (const row of rows) {
        const r = row.input.read();
        if (r === ABSENT) continue;
        if (r.error) errors.push(`item ${r.error}`); else items.push(r.value);
      }
      if (errors.length) return { error: errors.join('; ') };
      return { value: items };
    },
  };
}

/** An object: key/value rows, "Add NAME entry" for more; a row with both empty is none. */
function pairs(arg, common) {
  const kind = arg.value_type || 'string';
  const list = h('div', { class: 'items' });
  let rows = [];
  const render = (entries) => {
    list.replaceChildren();
    rows = entries.map(([key, value], i) => {
      const keyAttrs = i === 0 ? { id: `arg-${arg.name}`, ...common } : { 'aria-label': `${arg.name} key ${i + 1}` };
      const keyInput = h('input', { type: 'text', placeholder: 'key', autocomplete: 'off', ...keyAttrs });
      keyInput.value = key || '';
      const valueInput = scalarInput(kind, null, { 'aria-label': `${arg.name} value ${i + 1}`, placeholder: 'value' });
      valueInput.fill(value);
      const remove = h('button', { type: 'button', class: 'icon', 'aria-label': `Remove entry ${i + 1}`,
        title: 'Remove', onclick: () => {
          const current = rows.map((r) => r.raw());
          current.splice(i, 1);
          render(current.length ? current : [['', undefined]]);
          rows[Math.min(i, rows.length - 1)].key.focus();
        } }, '×');
      list.append(h('div', { class: 'item pair' }, keyInput, h('span', { 'aria-hidden': 'true' }, '='),
        valueInput.el, remove));
      return { key: keyInput, value: valueInput,
        raw: () => [keyInput.value, valueInput.el.tagName === 'SELECT' ? undefined : valueInput.el.value] };
    });
  };
  render([['', undefined]]);
  const more = h('button', { type: 'button', class: 'add' }, `Add ${arg.name} entry`);
  more.addEventListener('click', () => {
    render([...rows.map((r) => r.raw()), ['', undefined]]);
    rows[rows.length - 1].key.focus();
  });
  return {
    el: h('div', null, list, more),
    get first() { return rows[0].key; },
    fill: (value) => {
      const entries = value && typeof value === 'object' ? Object.entries(value) : [];
      render(entries.length ? entries : [['', undefined]]);
    },
    read: () => {
      const out = {};
      const errors = [];
      for (const row of rows) {
        const key = row.key.value;
        const r = row.value.read();
        if (key === '' && r === ABSENT) continue;
        if (!key.trim()) { errors.push(`key ${show(key)} must be a non-empty string`); continue; }
        if (Object.hasOwn(out, key)) { errors.push(`key '${key}' given more than once`); continue; }
        if (r === ABSENT) { errors.push(`value of '${key}' is missing`); continue; }
        if (r.error) errors.push(`value of '${key}': ${r.error}`); else out[key] = r.value;
      }
      return errors.length ? { error: errors.join('; ') } : { value: out };
    },
  };
}

/** Read every field: {values (only those that differ from the default), errors}. */
function collect(fields) {
  const values = {};
  const errors = [];
  for (const f of fields) {
    const { arg } = f;
    const r = f.control.read();
    let problems = [];
    if (r !== ABSENT && r.error) {
      problems = [r.error];
    } else {
      const value = r === ABSENT ? undefined : r.value;
      const empty = value === undefined || value === '' ||
        (Array.isArray(value) && !value.length) ||
        (arg.type === 'object' && value && !Object.keys(value).length);
      if (empty) {
        if (arg.required && !hasDefault(arg)) problems = ['required'];
      } else {
        problems = constraints(arg, value);
        const implicit = arg.type === 'boolean' ? false : undefined;
        const base = hasDefault(arg) ? arg.default : implicit;
        if (!problems.length && !same(value, base)) values[arg.name] = value;
      }
    }
    f.setError(problems.join('; '));
    for (const message of problems) errors.push({ arg: arg.name, message });
  }
  return { values, errors };
}

/** A shell command running the job through this server with the flwd CLI. */
export function cliCommand(job, values) {
  const words = ['flwd', '--server', shq(location.origin), shq(job.id)];
  for (const arg of job.args || []) {
    if (!(arg.name in values)) continue;
    const value = values[arg.name];
    const flag = `--${arg.name}`;
    if (isSecret(arg)) words.push(`${flag}-file`, `"$${arg.name.toUpperCase().replace(/-/g, '_')}_FILE"`);
    else if (arg.type === 'boolean') words.push(value ? flag : `--no-${arg.name}`);
    else if (arg.type === 'array') for (const item of value) words.push(flag, shq(plain(item)));
    else if (arg.type === 'object') for (const [k, v] of Object.entries(value)) words.push(flag, shq(`${k}=${plain(v)}`));
    else words.push(flag, shq(plain(value)));
  }
  return words.join(' ');
}

/** A curl command starting the same run (secrets as placeholders, the token from $FLWD_TOKEN). */
export function curlCommand(job, values) {
  const args = {};
  for (const arg of job.args || []) {
    if (arg.name in values) args[arg.name] = isSecret(arg) ? `<${arg.name}>` : values[arg.name];
  }
  const body = JSON.stringify({ job_id: job.id, args });
  return [`curl -s -X POST ${shq(location.origin + url('runs'))}`,
    `  -H "Authorization: Bearer $FLWD_TOKEN"`,
    `  -H 'Content-Type: application/json'`,
    `  -d ${shq(body)}`].join(' \\\n');
}

/** The non-secret arguments of a run, to pre-fill a form or start it again. */
export function rerunValues(job, run) {
  const secret = new Set((job ? job.args || [] : []).filter(isSecret).map((a) => a.name));
  const resolved = (run.result && run.result.resolved_args) || run.args || {};
  const out = {};
  for (const [name, value] of Object.entries(resolved)) {
    if (!secret.has(name) && value !== '[secret]') out[name] = value;
  }
  return out;
}

/**
 * The job's form in `container`: fields, Preview plan, Run, Copy as CLI / curl.
 * `initial`: values to pre-fill (never secrets).
 */
export function jobForm(job, { initial = {}, note = null } = {}) {
  const fields = (job.args || []).map(field);
  for (const f of fields) {
    if (f.arg.name in initial && !isSecret(f.arg)) f.control.fill(initial[f.arg.name]);
  }
  const alert = h('div', { class: 'form-alert' });
  const output = h('div', { class: 'form-output' });
  const runButton = h('button', { type: 'submit', class: 'primary' }, 'Run');
  const planButton = h('button', { type: 'button' }, 'Preview plan');
  const cliButton = h('button', { type: 'button' }, 'Copy as CLI');
  const curlButton = h('button', { type: 'button' }, 'Copy as curl');
  const form = h('form', { class: 'job-form', novalidate: true, 'aria-label': `Arguments of ${job.id}` },
    note, alert,
    fields.length ? fields.map((f) => f.el) : h('p', { class: 'muted' }, 'This job takes no arguments.'),
    h('div', { class: 'actions' }, can('runs:write') ? runButton : null, planButton, cliButton, curlButton),
    output);

  const check = () => {
    alert.replaceChildren();
    const { values, errors } = collect(fields);
    if (errors.length) {
      alert.append(h('div', { class: 'alert', role: 'alert' },
        `${errors.length === 1 ? '1 argument needs' : errors.length + ' arguments need'} attention.`));
      fields.find((f) => f.el.classList.contains('invalid')).focus();
      return null;
    }
    return values;
  };
  const serverProblem = (err) => {
    const list = (err.problem && Array.isArray(err.problem.errors)) ? err.problem.errors : [];
    const byName = new Map(fields.map((f) => [f.arg.name, f]));
    const shown = new Set();
    for (const { arg, message } of list) {
      const f = byName.get(arg);
      if (!f) continue;
      const prior = shown.has(arg) ? f.el.querySelector('.field-error').textContent + '; ' : '';
      f.setError(prior + message);
      shown.add(arg);
    }
    alert.replaceChildren(errorBox(err));
    const first = fields.find((f) => shown.has(f.arg.name));
    if (first) first.focus();
  };
  const busy = async (button, work) => {
    button.disabled = true;
    form.setAttribute('aria-busy', 'true');
    try { await work(); } finally { button.disabled = false; form.removeAttribute('aria-busy'); }
  };
  const clearSecrets = () => { for (const f of fields) if (f.control.clear) f.control.clear(); };

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    if (!can('runs:write')) return;
    const values = check();
    if (!values) return;
    busy(runButton, async () => {
      try {
        const run = await post('runs', { job_id: job.id, args: values },
          { headers: { 'Idempotency-Key': idempotencyKey() } });
        clearSecrets();
        location.hash = `#/runs/${encodeURIComponent(run.id)}`;
      } catch (err) {
        serverProblem(err);
      }
    });
  });
  planButton.addEventListener('click', () => {
    const values = check();
    if (!values) return;
    busy(planButton, async () => {
      try {
        const plan = await post('plans', { job_id: job.id, args: values });
        output.replaceChildren(planView(plan));
        announce('Plan ready');
      } catch (err) {
        serverProblem(err);
      }
    });
  });
  const copy = (what, make) => async () => {
    const values = check();
    if (!values) return;
    const text = make(job, values);
    const copied = await copyText(text);
    output.replaceChildren(h('section', { class: 'copy', 'aria-label': what },
      h('h3', null, what), h('pre', { class: 'code', tabindex: '0' }, text),
      h('p', { class: 'muted' }, copied ? 'Copied to the clipboard.' : 'Select the command to copy it.')));
    announce(copied ? `${what} copied to the clipboard` : `${what} shown below`);
  };
  cliButton.addEventListener('click', copy('CLI command', cliCommand));
  curlButton.addEventListener('click', copy('curl command', curlCommand));
  return form;
}

