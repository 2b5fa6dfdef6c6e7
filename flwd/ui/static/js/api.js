// The API client: JSON in and out, problems as errors, the session and its scopes.
//
// Authentication in a browser is the session cookie (HttpOnly: this code never sees it);
// state-changing requests carry the session's CSRF token, which is kept in memory only
// (GET /session hands it out again after a reload).

const SAFE = new Set(['GET', 'HEAD', 'OPTIONS']);
// The API's routes are at the server's root, as the UI's shell is (GET /).
const BASE = '/';

export const session = { info: null };
let csrf = null;
let serverInfo = null;

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

/** The URL of an API path ("runs/ID/events"). */
export function url(path) { return BASE + path; }

/** Whether the session may use `scope` (the UI hides what it may not). */
export function can(scope) {
  const scopes = (session.info && session.info.scopes) || [];
  return scopes.includes('*') || scopes.includes(scope);
}

export function setSession(info) {
  session.info = info;
  csrf = (info && info.csrf_token) || null;
}

/** Send the browser to the login page, coming back here afterwards. */
export function toLogin() {
  const here = location.hash || '#/jobs';
  if (here.startsWith('#/login')) return;
  setSession(null);
  location.hash = '#/login?next=' + encodeURIComponent(here);
}

/**
 * One request. Resolves to the parsed body (null for 204), or {data, response} with
 * `full`; rejects with an ApiError carrying the RFC 7807 problem.
 */
export async function request(method, path, { body, headers = {}, full = false, login = true,
  signal } = {}) {
  const init = { method, headers: { Accept: 'application/json', ...headers },
    credentials: 'same-origin', signal };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers['Content-Type'] = 'application/json';
  }
  if (!SAFE.has(method) && csrf) init.headers['X-CSRF-Token'] = csrf;
  let response;
  try {
    response = await fetch(url(path), init);
  } catch (err) {
    if (err && err.name === 'AbortError') throw err;
    throw new ApiError(0, { title: 'cannot reach the server', detail: String(err.message || err) });
  }
  if (response.status === 401 && login) toLogin();
  const type = response.headers.get('Content-Type') || '';
  if (!response.ok) {
    let problem = { title: `HTTP ${response.status}`, status: response.status };
    if (type.includes('json')) {
      try { problem = await response.json(); } catch (_) { /* keep the generic one */ }
    }
    throw new ApiError(response.status, problem);
  }
  let data = null;
  if (response.status !== 204) data = type.includes('json') ? await response.json() : await response.text();
  return full ? { data, response } : data;
}

// A first page's data asked for beside GET /session rather than after it: the first load
// waits for one round trip instead of two. Taken once by the page's own get; a refused or
// failed one is asked again by that get (its errors and its 401 handling are the page's).
const early = new Map();

/** Ask for `path` now, for the get that will follow. */
export function prefetch(path) {
  const answer = request('GET', path, { login: false });
  answer.catch(() => { /* the page's own get asks again */ });
  early.set(path, answer);
}

/** Forget what `prefetch` asked for (the session turned out to be missing). */
export function dropPrefetched() { early.clear(); }

export const get = (path, opts) => {
  const answer = early.get(path);
  if (!answer) return request('GET', path, opts);
  early.delete(path);
  return answer.catch(() => request('GET', path, opts));
};
export const post = (path, body, opts) => request('POST', path, { ...opts, body });
export const del = (path, opts) => request('DELETE', path, opts);

/** Path segment of an id (job ids hold '/'; run ids never do). */
export const seg = (id) => String(id).split('/').map(encodeURIComponent).join('/');

/**
 * The session: GET /session. null when there is none (log in). A server without
 * browser sessions (404) is taken as one that needs none: its answers decide.
 */
export async function loadSession() {
  try {
    setSession(await request('GET', 'session', { login: false }));
  } catch (err) {
    if (err.status === 401) setSession(null);
    else if (err.status === 404) setSession({ name: 'anonymous', scopes: ['*'], dev: true });
    else throw err;
  }
  return session.info;
}

/** GET /server (version, profile, runtime, grace), fetched once; null when unavailable. */
export async function server() {
  if (serverInfo) return serverInfo;
  try {
    serverInfo = await request('GET', 'server', { login: false });
  } catch (_) {
    return null;
  }
  return serverInfo;
}

/** A random Idempotency-Key: a double click or a retried request starts one run. */
export function idempotencyKey() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return 'ui-' + Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}
