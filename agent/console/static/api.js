// The one way the console reaches the agent: its public REST API, with the
// credentials the user logged in with. Pages never call fetch themselves,
// so that credentials, errors and paging are handled the same everywhere.

const SESSION_KEY = 'lwm2m-agent.session';

// ApiError is an answer other than 2xx, or no answer at all (status 0).
// message is the API's own message (its "message" member), kind its
// "error" member ("devicecontrol/unprocessable"), info its "info".
export class ApiError extends Error {
  constructor(status, message, { kind = '', info = '', body = null } = {}) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.kind = kind;
    this.info = info;
    this.body = body;
  }
}

// The session lives in sessionStorage only: it ends with the tab, is never
// written to localStorage, and never appears in a URL.
export function session() {
  try {
    const s = JSON.parse(sessionStorage.getItem(SESSION_KEY) || 'null');
    return s && s.auth ? s : null;
  } catch {
    return null;
  }
}

const listeners = new Set();

// onUnauthorized calls f when an API call answers 401 after login: the
// password changed or the user was removed. Returns the unsubscribe.
export function onUnauthorized(f) {
  listeners.add(f);
  return () => listeners.delete(f);
}

function basic(tenant, user, password) {
  const bytes = new TextEncoder().encode(`${tenant}/${user}:${password}`);
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
}

// login checks the credentials with one cheap authenticated call and
// keeps them for the tab; a wrong password throws the API's ApiError.
export async function login(tenant, user, password) {
  const auth = basic(tenant.trim(), user.trim(), password);
  await request('GET', '/inventory/managedObjects', { query: { pageSize: 1 }, auth, silent401: true });
  const s = { tenant: tenant.trim(), user: user.trim(), auth };
  sessionStorage.setItem(SESSION_KEY, JSON.stringify(s));
  return s;
}

export function logout() {
  sessionStorage.removeItem(SESSION_KEY);
}

// url builds a path with query parameters; undefined, null and '' are left out.
export function url(path, query) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query || {})) {
    if (v === undefined || v === null || v === '') continue;
    q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

// request makes one API call. body: a plain object or array is sent as
// JSON; a string, Blob or FormData as it is (set contentType for a
// string). Answers: the decoded JSON, the text for other types, null for
// 204. Errors: ApiError with the API's message.
export async function request(method, path, { query, body, contentType, signal, auth, silent401 = false } = {}) {
  const s = auth ? { auth } : session();
  const headers = { Accept: 'application/json' };
  if (s) headers.Authorization = `Basic ${s.auth}`;
  let payload = body;
  if (body !== undefined && body !== null && !(body instanceof Blob) && !(body instanceof FormData) && typeof body !== 'string') {
    payload = JSON.stringify(body);
    headers['Content-Type'] = 'application/json';
  } else if (contentType) {
    headers['Content-Type'] = contentType;
  }
  let res;
  try {
    // credentials "omit": the Authorization header is ours, and a 401
    // must come back to the page, not open the browser's login dialog
    res = await fetch(url(path, query), { method, headers, body: payload, signal, credentials: 'omit', cache: 'no-store' });
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    throw new ApiError(0, `The agent did not answer (${err.message}). Is it running?`);
  }
  const type = res.headers.get('Content-Type') || '';
  let data = null;
  if (res.status !== 204) {
    const text = await res.text();
    if (type.includes('json') && text) {
      try {
        data = JSON.parse(text);
      } catch {
        data = text;
      }
    } else {
      data = text;
    }
  }
  if (res.ok) return data;
  const message = data && typeof data === 'object' && data.message ? data.message : `${res.status} ${res.statusText || 'error'}${typeof data === 'string' && data ? `: ${data}` : ''}`;
  const e = new ApiError(res.status, message, data && typeof data === 'object' ? { kind: data.error, info: data.info, body: data } : {});
  if (res.status === 401 && !silent401) for (const f of listeners) f(e);
  if (res.status === 429) {
    const after = res.headers.get('Retry-After');
    if (after && !/try again/.test(e.message)) e.message += ` (try again in ${after} s)`;
  }
  throw e;
}

export const get = (path, query, opts = {}) => request('GET', path, { ...opts, query });
export const post = (path, body, opts = {}) => request('POST', path, { ...opts, body });
export const put = (path, body, opts = {}) => request('PUT', path, { ...opts, body });
export const del = (path, opts = {}) => request('DELETE', path, opts);

// list fetches one page of a collection: collection is the member that
// holds the items ("managedObjects", "operations"). Answers the items and
// what a pager needs.
export async function list(path, collection, { pageSize = 20, currentPage = 1, withTotalPages = false, signal, ...query } = {}) {
  const data = await get(path, { ...query, pageSize, currentPage, withTotalPages: withTotalPages || undefined }, { signal });
  const st = data.statistics || {};
  const items = data[collection] || [];
  return {
    items,
    currentPage: st.currentPage || currentPage,
    pageSize: st.pageSize || pageSize,
    totalPages: st.totalPages,
    totalElements: st.totalElements,
    hasNext: Boolean(data.next),
    hasPrev: currentPage > 1,
  };
}

// --- operations -------------------------------------------------------

export const FINAL = new Set(['SUCCESSFUL', 'FAILED']);

// runCommand queues a shell command on a device and answers the operation
// (PENDING). A command the agent refuses throws its 422 ApiError.
export function runCommand(deviceId, text, { signal } = {}) {
  return post('/devicecontrol/operations', { deviceId: String(deviceId), c8y_Command: { text } }, { signal });
}

// waitForOperation follows one operation until it is SUCCESSFUL or
// FAILED, calling onUpdate at every status it sees, and answers the last.
// This is the one place that waits for operations: it follows the
// device's realtime channel (/operations/{deviceId}) and reads the
// operation once more after subscribing, so that a change made before
// the subscription is not missed; where the agent serves no realtime
// notifications it asks the API every 0.5 s. signal stops the waiting
// (not the operation).
export async function waitForOperation(op, { signal, onUpdate } = {}) {
  let cur = typeof op === 'string' ? await get(`/devicecontrol/operations/${op}`, undefined, { signal }) : op;
  let last = '';
  const seen = (o) => {
    if (!o || String(o.id) !== String(cur.id) || !o.status) return false;
    cur = { ...cur, ...o };
    if (cur.status !== last) {
      last = cur.status;
      onUpdate?.(cur);
    }
    return FINAL.has(cur.status);
  };
  if (seen(cur)) return cur;
  const { follow } = await import('./lib/realtime.js');
  const stop = new AbortController();
  const abort = () => stop.abort();
  signal?.addEventListener('abort', abort, { once: true });
  try {
    return await new Promise((resolve, reject) => {
      const check = (o) => {
        if (seen(o)) resolve(cur);
      };
      const read = async (sig) => check(await get(`/devicecontrol/operations/${cur.id}`, undefined, { signal: sig }));
      stop.signal.addEventListener('abort', () => reject(new DOMException('aborted', 'AbortError')), { once: true });
      follow(`/operations/${cur.deviceId}`, {
        signal: stop.signal, interval: 500, poll: read,
        onMessage: (m) => m?.realtimeAction !== 'DELETE' && check(m?.data),
      }).then(() => read(stop.signal)).catch((err) => {
        if (err?.name !== 'AbortError') reject(err);
      });
    });
  } finally {
    signal?.removeEventListener('abort', abort);
    stop.abort();
  }
}

// runAndWait queues a command and waits for its end.
export async function runAndWait(deviceId, text, opts = {}) {
  const op = await runCommand(deviceId, text, opts);
  return waitForOperation(op, opts);
}

// recentOperations answers a device's newest operations, oldest first:
// the API lists in creation order, so this reads the last page (and the
// one before when the last is short).
export async function recentOperations(deviceId, { count = 20, signal } = {}) {
  const first = await list('/devicecontrol/operations', 'operations', { deviceId, pageSize: count, withTotalPages: true, signal });
  const pages = first.totalPages || 1;
  if (pages <= 1) return { operations: first.items, more: false };
  const last = await list('/devicecontrol/operations', 'operations', { deviceId, pageSize: count, currentPage: pages, signal });
  let ops = last.items;
  if (ops.length < count) {
    const before = await list('/devicecontrol/operations', 'operations', { deviceId, pageSize: count, currentPage: pages - 1, signal });
    ops = before.items.concat(ops).slice(-count);
  }
  return { operations: ops, more: true, page: pages };
}

// watchOperations calls onOperations with a device's newest operations
// (oldest first) now and whenever they may have changed, until signal
// aborts. Callers merge by id. It follows the device's realtime channel,
// passing each created or changed operation as it comes; where the agent
// serves no realtime notifications it asks the API every interval ms.
export function watchOperations(deviceId, { signal, onOperations, onError, interval = 2000, count = 20 } = {}) {
  const readAll = async (sig) => {
    try {
      const { operations } = await recentOperations(deviceId, { count, signal: sig });
      onOperations(operations);
    } catch (err) {
      if (err.name === 'AbortError') return;
      onError?.(err);
    }
  };
  (async () => {
    const { follow } = await import('./lib/realtime.js');
    if (signal?.aborted) return;
    await follow(`/operations/${deviceId}`, {
      signal, interval, poll: readAll,
      onMessage: (m) => {
        if (m?.realtimeAction !== 'DELETE' && m?.data?.id) onOperations([m.data]);
      },
    });
    // what changed before the subscription, and the first view
    await readAll(signal);
  })().catch((err) => onError?.(err));
}

// --- device protocols ----------------------------------------------------

const protocolCache = new Map(); // objectId -> Promise<protocol|null>

// protocol answers the tenant's device protocol of an object (its own,
// inherited or built in), null when there is none; kept for the tab.
export function protocol(objectId) {
  const id = String(objectId);
  if (!protocolCache.has(id)) {
    const p = get(`/lwm2m/deviceprotocols/${id}`).catch((err) => {
      protocolCache.delete(id);
      if (err.status === 404 || err.status === 422) return null;
      throw err;
    });
    protocolCache.set(id, p);
  }
  return protocolCache.get(id);
}

// forgetProtocols drops what protocol() kept, after a change.
export function forgetProtocols() {
  protocolCache.clear();
}

// --- files ---------------------------------------------------------------

// download fetches a file of the API (a binary) with the user's
// credentials and hands it to the browser as a download named name: a
// plain link cannot carry the Authorization header. Errors: ApiError.
export async function download(path, name, { signal } = {}) {
  const s = session();
  let res;
  try {
    res = await fetch(path, { headers: s ? { Authorization: `Basic ${s.auth}` } : {}, signal, credentials: 'omit', cache: 'no-store' });
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    throw new ApiError(0, `The agent did not answer (${err.message}). Is it running?`);
  }
  if (!res.ok) {
    let data = null;
    try {
      data = await res.json();
    } catch {
      // not the API's JSON error: the status says it
    }
    throw new ApiError(res.status, data?.message || `${res.status} ${res.statusText || 'error'}`, { kind: data?.error, info: data?.info, body: data });
  }
  const href = URL.createObjectURL(await res.blob());
  try {
    const a = Object.assign(document.createElement('a'), { href, download: name || 'download' });
    document.body.append(a);
    a.click();
    a.remove();
  } finally {
    // the click has started the download; the URL is not needed after it
    setTimeout(() => URL.revokeObjectURL(href), 10000);
  }
}
