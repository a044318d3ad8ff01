// Registration: one device by form, many from a CSV file, and the
// commands run on every device after its registration; each view a
// module of pages/registration/, chosen by ?view= so that each has an
// address and the back button works.
import { h, tabs as tabBar, pageHeader } from '../ui.js';
import { href } from '../router.js';

const views = [
  { id: 'device', title: 'One device', load: () => import('./registration/device.js') },
  { id: 'file', title: 'From a file (CSV)', load: () => import('./registration/file.js') },
  { id: 'commands', title: 'Post-registration commands', load: () => import('./registration/postops.js') },
];

export async function render(el, ctx) {
  const active = views.find((v) => v.id === ctx.query.view) || views[0];
  ctx.setTitle(`Registration · ${active.title}`);
  const body = h('div', { class: `tab tab-${active.id}` });
  el.append(pageHeader('Registration'),
    tabBar(views.map((v) => ({ id: v.id, title: v.title, href: href('/registration', { view: v === views[0] ? '' : v.id }) })), active.id, 'Registration'),
    body);
  const mod = await active.load();
  if (ctx.signal.aborted) return;
  await mod.render(body, ctx);
}
