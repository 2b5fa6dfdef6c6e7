// Tiny DOM helpers: element creation without innerHTML (every text is a text node, so
// nothing a job prints or a user types can become markup), and the page's live region.

const PROPS = new Set(['value', 'checked', 'selected', 'disabled', 'hidden', 'indeterminate']);

/** h('button', {class: 'btn', onclick: fn}, 'Run') → an element. */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [key, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (key.startsWith('on') && typeof value === 'function') {
        el.addEventListener(key.slice(2), value);
      } else if (key === 'class') {
        el.className = value;
      } else if (PROPS.has(key)) {
        el[key] = value;
      } else {
        el.setAttribute(key, value === true ? '' : String(value));
      }
    }
  }
  add(el, children);
  return el;
}

/** Append children: nodes, strings (as text), arrays of them; null/false are skipped. */
export function add(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) add(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Say something to screen readers (the polite live region of index.html). */
export function announce(text) {
  const region = document.getElementById('announce');
  if (!region) return;
  region.textContent = '';
  // A change in a later task is announced even when the text is the same as before.
  setTimeout(() => { region.textContent = text; }, 30);
}

/** A problem (an ApiError or any Error) as an alert box. */
export function errorBox(err, prefix = '') {
  const p = err && err.problem;
  const title = p ? (p.title || `HTTP ${err.status}`) : 'Error';
  const detail = p ? (p.detail || '') : String((err && err.message) || err);
  return h('div', {class: 'alert', role: 'alert'},
    h('strong', null, prefix + title), detail ? h('span', null, ' — ' + detail) : null);
}

/** A page heading that navigation moves the focus to (tabindex -1: focusable by script). */
export function heading(text, level = 1) {
  return h('h' + level, {tabindex: '-1', class: 'page-title'}, text);
}

/** A status word as a badge; the class colours it, the text says it. */
export function badge(status) {
  return h('span', {class: 'badge st-' + String(status).replace(/[^a-z]/g, '')}, status);
}

/** A hash link that works for any id (job ids hold '/' and '.'). */
export function hashFor(kind, id, query) {
  const q = query ? '?' + new URLSearchParams(query).toString() : '';
  return `#/${kind}/${encodeURIComponent(id)}${q}`;
}

/** Copy text to the clipboard; false where the page has no clipboard (plain http). */
export async function copyText(text) {
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return true;
    }
  } catch (_) { /* permission refused: the caller shows the text instead */ }
  return false;
}

/** Shell-quote one word (POSIX sh). */
export function shq(word) {
  const text = String(word);
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(text)) return text;
  return "'" + text.replace(/'/g, "'\\''") + "'";
}

/** Replace an element's children (null/false children are skipped, unlike replaceChildren). */
export function fill(el, ...children) {
  el.replaceChildren();
  return add(el, children);
}
