// Starts the console: the main menu, the user box, and the router.
import { routes } from './routes.js';
import { start, onRoute, navigate } from './router.js';
import { session, logout, onUnauthorized } from './api.js';
import { h, clear, toast } from './ui.js';

function menu(path) {
  const nav = document.getElementById('nav');
  const s = session();
  const items = s ? routes.filter((r) => r.nav && (!r.navIf || r.navIf(s))) : [];
  clear(nav, h('ul', {}, items.map((r) => {
    const active = path === r.path || path.startsWith(r.path + '/');
    return h('li', {}, h('a', { href: `#${r.path}`, class: active ? 'active' : null, 'aria-current': active ? 'page' : null }, r.nav));
  })));
  const user = document.getElementById('user');
  clear(user, s ? [
    h('span', { class: 'who', title: 'Logged in as' }, `${s.tenant}/${s.user}`),
    h('button', { type: 'button', class: 'btn btn-ghost', onClick: () => { logout(); navigate('/login'); } }, 'Log out'),
  ] : []);
}

onRoute((path) => menu(path));
onUnauthorized((err) => {
  logout();
  toast(`Logged out: ${err.message}`, { kind: 'error' });
  navigate('/login', { next: location.hash.slice(1) });
});
start();
