// A hash router: "#/devices/12/objects?x=1" renders the route whose path
// is "/devices/:id/:tab" with params {id: "12", tab: "objects"} and query
// {x: "1"}. Every page is a module exporting render(el, ctx); the router
// gives it an empty element and ctx.signal, which aborts when the user
// leaves the page, so that its polls and waits stop with it.
import { routes, home } from './routes.js';
import { session } from './api.js';
import { h, clear, errorBox, spinner } from './ui.js';

let current = null; // {controller}

// match finds the route of a path: the first whose segments all fit.
export function match(path, table = routes) {
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  for (const r of table) {
    const want = r.path.split('/').filter(Boolean);
    if (want.length !== parts.length) continue;
    const params = {};
    if (want.every((w, i) => (w.startsWith(':') ? ((params[w.slice(1)] = parts[i]), true) : w === parts[i]))) {
      return { route: r, params };
    }
  }
  return null;
}

// parse splits a location hash into its path and query.
export function parse(hash) {
  const raw = hash.replace(/^#/, '') || '/';
  const [path, qs = ''] = raw.split('?');
  return { path: path || '/', query: Object.fromEntries(new URLSearchParams(qs)) };
}

// href builds a hash link: href('/devices/12/shell', {filter: '/3/0'}).
export function href(path, query) {
  const q = new URLSearchParams(Object.entries(query || {}).filter(([, v]) => v !== undefined && v !== null && v !== '')).toString();
  return `#${path}${q ? `?${q}` : ''}`;
}

export function navigate(path, query, { replace = false } = {}) {
  const target = href(path, query);
  if (replace) {
    history.replaceState(null, '', target);
    render();
  } else if (location.hash === target) {
    render();
  } else {
    location.hash = target;
  }
}

// setQuery changes the current page's query without rendering it again
// (the page already shows it): for search boxes and pagers, so that
// reload and back keep what the user chose.
export function setQuery(query) {
  const { path } = parse(location.hash);
  history.replaceState(null, '', href(path, query));
}

const listeners = new Set();
// onRoute calls f(path) after every navigation (the menu marks its entry).
export function onRoute(f) {
  listeners.add(f);
}

let first = true;

export async function render() {
  const outlet = document.getElementById('main');
  const wasFirst = first;
  first = false;
  const { path, query } = parse(location.hash);
  current?.controller.abort();
  const controller = new AbortController();
  current = { controller };
  if (path === '/') return navigate(session() ? home : '/login', undefined, { replace: true });
  const found = match(path);
  if (!found) {
    clear(outlet, h('h1', {}, 'Not found'), h('p', {}, `The console has no page at ${path}. `, h('a', { href: `#${home}` }, 'Go to the start page')));
    return;
  }
  if (!found.route.public && !session()) {
    return navigate('/login', { next: location.hash.slice(1) }, { replace: true });
  }
  for (const f of listeners) f(path, found.route);
  document.title = `${found.route.title || found.route.nav || 'lwm2m-agent'} · lwm2m-agent`;
  clear(outlet, spinner());
  try {
    const mod = await found.route.page();
    if (controller.signal.aborted) return;
    const el = h('div', { class: 'page' });
    const ctx = {
      params: found.params, query, path, signal: controller.signal,
      setTitle: (t) => { document.title = `${t} · lwm2m-agent`; },
    };
    clear(outlet, el);
    await mod.render(el, ctx);
    // a page that did not focus a control of its own: focus goes to the
    // page, so that keyboard and screen reader users start there
    if (!wasFirst && (document.activeElement === document.body || !document.activeElement?.isConnected)) outlet.focus({ preventScroll: true });
  } catch (err) {
    if (err?.name === 'AbortError' || controller.signal.aborted) return;
    clear(outlet, h('h1', {}, 'This page failed'), errorBox(err));
  }
}

export function start() {
  window.addEventListener('hashchange', render);
  return render();
}
