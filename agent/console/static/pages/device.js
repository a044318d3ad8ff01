// A device's page: its name, availability and registration at the top,
// then the tabs of pages/device/tabs.js. Each tab module gets ctx with
// device (the managed object as the API answers it), id, query and
// signal, and reload() to read the device again.
import { get } from '../api.js';
import { h, clear, tabs as tabBar, badge, time, errorBox, spinner } from '../ui.js';
import { href } from '../router.js';
import { tabs } from './device/tabs.js';

export async function render(el, ctx) {
  const id = ctx.params.id;
  const active = tabs.find((t) => t.id === (ctx.params.tab || tabs[0].id));
  const head = h('div', {});
  const body = h('div', { class: 'tab-body' });
  el.append(h('p', {}, h('a', { href: href('/devices') }, '‹ Devices')), head, body);
  if (!active) {
    clear(body, errorBox(new Error(`This device page has no tab “${ctx.params.tab}”.`)));
  }
  let device;
  try {
    device = await get(`/inventory/managedObjects/${encodeURIComponent(id)}`, undefined, { signal: ctx.signal });
  } catch (err) {
    // another tenant's device is not found either: the API says the same
    if (err.status === 404) err.message = `No device ${id} in your tenant (${err.message}).`;
    throw err;
  }
  const name = device.name || `Device ${device.id}`;
  ctx.setTitle(active ? `${name} · ${active.title}` : name);
  const l = device.lwm2m || {};
  clear(head,
    h('div', { class: 'device-head' }, h('h1', {}, name), badge(device.c8y_Availability?.status || 'UNKNOWN')),
    h('div', { class: 'device-facts' },
      l.endpoint ? h('span', {}, 'Endpoint ', h('strong', { class: 'mono' }, l.endpoint)) : null,
      h('span', {}, 'ID ', h('strong', {}, device.id)),
      device.type ? h('span', {}, 'Type ', h('strong', {}, device.type)) : null,
      l.lwm2mVersion ? h('span', {}, 'LwM2M ', h('strong', {}, l.lwm2mVersion)) : null,
      h('span', {}, 'Last contact ', h('strong', {}, time(device.c8y_Availability?.lastMessage || l.lastUpdate)))),
    tabBar(tabs.map((t) => ({ id: t.id, title: t.title, href: href(`/devices/${device.id}/${t.id}`) })), active?.id, 'Device sections'));
  if (!active) return;
  clear(body, spinner());
  const mod = await active.load();
  if (ctx.signal.aborted) return;
  const tabEl = h('div', { class: `tab tab-${active.id}` });
  clear(body, tabEl);
  await mod.render(tabEl, {
    ...ctx, id: device.id, device,
    reload: () => get(`/inventory/managedObjects/${encodeURIComponent(id)}`, undefined, { signal: ctx.signal }),
  });
}
