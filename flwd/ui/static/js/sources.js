// Job sources: list, add (local folder, git repository, OCI add-on) after confirming
// trust, refresh, remove.
import { h, heading, errorBox, badge, announce } from './dom.js';
import { get, post, del, can, seg } from './api.js';
import { timeEl } from './time.js';

export async function sourcesPage(view, { signal }) {
  view.append(heading('Sources'));
  const writable = can('sources:write');
  const region = h('div', { 'aria-live': 'polite' });
  const alert = h('div');
  view.append(alert, region);

  const load = async () => {
    let sources;
    try {
      sources = await get('sources', { signal });
    } catch (err) {
      if (err.name !== 'AbortError') region.replaceChildren(errorBox(err));
      return;
    }
    if (!sources.length) {
      region.replaceChildren(h('p', { class: 'muted' }, 'No sources: every job comes from the workspace\'s scripts/.'));
      return;
    }
    region.replaceChildren(h('div', { class: 'table-wrap' }, h('table', { class: 'sources' },
      h('thead', null, h('tr', null, ['Name', 'Type', 'Location', 'Status', 'Jobs', 'Pinned at', 'Updated', writable ? 'Actions' : null]
        .filter(Boolean).map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', null, sources.map((s) => h('tr', null,
        h('th', { scope: 'row' }, s.name),
        h('td', null, s.type),
        h('td', null, h('code', null, s.url ? `${s.url} @ ${s.ref}` : s.ref)),
        h('td', null, badge(s.status), s.error ? h('p', { class: 'field-error' }, s.error) : null),
        h('td', { class: 'num' }, s.jobs ?? '—'),
        h('td', null, h('code', null, (s.resolved_commit || s.digest || s.resolved_ref || '—').slice(0, 19))),
        h('td', null, timeEl(s.updated_at)),
        writable ? h('td', { class: 'actions' },
          h('button', { type: 'button', 'aria-label': `Refresh ${s.name}`, onclick: (e) => act(e.currentTarget, 'Refreshed', () => post(`sources/${seg(s.name)}:refresh`)) }, 'Refresh'),
          h('button', { type: 'button', class: 'danger', 'aria-label': `Remove ${s.name}`, onclick: (e) => {
            if (confirm(`Remove source ${s.name}? Its jobs disappear (its files on this host are kept for local sources).`)) {
              act(e.currentTarget, 'Removed', () => del(`sources/${seg(s.name)}`));
            }
          } }, 'Remove')) : null))))));
  };
  const act = async (button, done, work) => {
    button.disabled = true;
    alert.replaceChildren();
    try {
      await work();
      announce(done);
    } catch (err) {
      alert.replaceChildren(errorBox(err));
    } finally {
      button.disabled = false;
    }
    await load();
  };
  await load();
  if (writable) view.append(addForm(load, alert));
}

function addForm(reload, pageAlert) {
  const field = (id, label, input, help) => h('div', { class: 'field', id: `field-${id}` },
    h('div', { class: 'field-head' }, h('label', { for: id }, label)), input,
    help ? h('p', { class: 'help', id: `${id}-help` }, help) : null,
    h('p', { class: 'field-error', id: `${id}-err`, hidden: true }));
  const kinds = ['local', 'git', 'oci'].map((kind, i) => h('label', { class: 'choice' },
    h('input', { type: 'radio', name: 'src-type', value: kind, checked: i === 0 }), kind));
  const name = h('input', { id: 'src-name', autocomplete: 'off', pattern: '[A-Za-z0-9][A-Za-z0-9_\\-]{0,63}' });
  const ref = h('input', { id: 'src-ref', autocomplete: 'off', required: true });
  const srcUrl = h('input', { id: 'src-url', autocomplete: 'off' });
  const expose = h('select', { id: 'src-expose' }, ['read', 'readwrite', 'none'].map((v) => h('option', { value: v }, v)));
  const pull = h('select', { id: 'src-pull' }, ['on-add', 'on-run'].map((v) => h('option', { value: v }, v)));
  const trust = h('input', { type: 'checkbox', id: 'src-trust' });
  const trustText = h('span');
  const alert = h('div');
  const urlField = field('src-url', 'URL', srcUrl, 'The repository: file:///path, a path, https://, ssh:// or git@host:path');
  const pullField = field('src-pull', 'Pull policy', pull, 'on-add: pull now and pin the digest; on-run: the image must be present when a job runs');
  const refField = field('src-ref', 'Ref', ref);
  const kind = () => kinds.map((l) => l.querySelector('input')).find((i) => i.checked).value;
  const adapt = () => {
    const k = kind();
    urlField.hidden = k !== 'git';
    pullField.hidden = k !== 'oci';
    refField.querySelector('.help')?.remove();
    refField.insertBefore(h('p', { class: 'help' }, {
      local: 'The folder on the server\'s host (absolute, or relative to its scripts root), inside its allow-list',
      git: 'A branch, tag or commit, pinned when added',
      oci: 'The image, e.g. registry.example/addon:1.0.0',
    }[k]), refField.querySelector('.field-error'));
    trustText.textContent = k === 'oci'
      ? 'I trust this image: adding it runs it to read its manifest, and its jobs run on this server.'
      : 'I trust the jobs of this source: they run on this server with its permissions.';
  };
  for (const label of kinds) label.querySelector('input').addEventListener('change', adapt);
  const form = h('form', { class: 'add-source', novalidate: true, 'aria-labelledby': 'add-source-title' },
    h('h2', { id: 'add-source-title' }, 'Add a source'),
    h('div', { class: 'field' }, h('div', { class: 'field-head' }, h('span', { class: 'label', id: 'src-type-label' }, 'Type')),
      h('div', { role: 'radiogroup', class: 'choices', 'aria-labelledby': 'src-type-label' }, kinds)),
    field('src-name', 'Name', name, 'One word (letters, digits, - and _); the namespace of its jobs. Default: from the location'),
    refField, urlField, pullField, field('src-expose', 'Expose aliases', expose),
    h('div', { class: 'field', id: 'field-trusted' }, h('label', { class: 'check' }, trust, trustText),
      h('p', { class: 'field-error', id: 'src-trust-err', hidden: true })),
    alert, h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Add source')));
  adapt();
  const setError = (id, message) => {
    const err = form.querySelector(`#${id}-err`) || form.querySelector(`#field-${id} .field-error`);
    if (!err) return false;
    err.hidden = !message;
    err.textContent = message || '';
    return true;
  };
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    alert.replaceChildren();
    for (const id of ['src-name', 'src-ref', 'src-url', 'src-trust']) setError(id, '');
    const k = kind();
    const body = { type: k, ref: ref.value.trim(), expose: expose.value };
    if (name.value.trim()) body.name = name.value.trim();
    if (k === 'git') body.url = srcUrl.value.trim();
    if (k === 'oci') { body.pull_policy = pull.value; body.trusted = true; }
    let bad = false;
    if (!body.ref) bad = setError('src-ref', 'required');
    if (k === 'git' && !body.url) bad = setError('src-url', 'required for a git source');
    if (body.name && !/^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/.test(body.name)) bad = setError('src-name', 'one word: letters, digits, - and _, at most 64');
    if (!trust.checked) bad = setError('src-trust', 'confirm that you trust this source');
    if (bad) { form.querySelector('.field-error:not([hidden])')?.closest('.field')?.querySelector('input')?.focus(); return; }
    const submit = form.querySelector('button[type=submit]');
    submit.disabled = true;
    try {
      const added = await post('sources', body);
      announce(`Source ${added.name} added`);
      form.reset();
      kinds[0].querySelector('input').checked = true;
      adapt();
      pageAlert.replaceChildren();
      await reload();
    } catch (err) {
      const map = { name: 'src-name', ref: 'src-ref', url: 'src-url', trusted: 'src-trust' };
      for (const e of (err.problem && err.problem.errors) || []) if (map[e.arg]) setError(map[e.arg], e.message);
      alert.replaceChildren(errorBox(err));
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}
