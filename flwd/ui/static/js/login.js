// Log in: a bearer token is exchanged for a session cookie (POST /session). The token is
// sent once and never kept by the page.
import { h, heading, errorBox } from './dom.js';
import { post, setSession } from './api.js';

export async function loginPage(view, { query }) {
  const token = h('input', { type: 'password', id: 'token', autocomplete: 'off', required: true, spellcheck: 'false' });
  const alert = h('div');
  const button = h('button', { type: 'submit', class: 'primary' }, 'Log in');
  const form = h('form', { class: 'login', novalidate: true, 'aria-labelledby': 'login-title' },
    h('div', { class: 'field' }, h('div', { class: 'field-head' }, h('label', { for: 'token' }, 'Token')), token,
      h('p', { class: 'help', id: 'token-help' }, 'A token from flwd :tokens create. The page keeps only a session cookie.')),
    alert, h('div', { class: 'actions' }, button));
  token.setAttribute('aria-describedby', 'token-help');
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    alert.replaceChildren();
    if (!token.value) { alert.append(h('p', { class: 'field-error', role: 'alert' }, 'Enter a token.')); token.focus(); return; }
    button.disabled = true;
    try {
      const info = await post('session', { token: token.value }, { login: false });
      token.value = '';
      setSession(info);
      const next = query.get('next') || '';
      location.hash = next.startsWith('#/') && !next.startsWith('#/login') ? next : '#/jobs';
    } catch (err) {
      token.value = '';
      alert.append(errorBox(err, 'Not logged in: '));
      token.focus();
    } finally {
      button.disabled = false;
    }
  });
  const title = heading('Log in');
  title.id = 'login-title';
  view.append(title, form);
  token.focus();
}
