// One device group: its members (devices and subgroups, its child
// assets) with their removal, and forms that add devices (found by
// name) and subgroups. The bulk operation page starts from here.
import { get, list, post, del } from '../api.js';
import { h, clear, table, pager, badge, field, card, button, confirm, errorBox, spinner, pageHeader, link } from '../ui.js';
import { href } from '../router.js';
import { devicePicker, groups } from '../lib/repository.js';

export async function render(el, ctx) {
  const id = ctx.params.id;
  let group;
  try {
    group = await get(`/inventory/managedObjects/${encodeURIComponent(id)}`, undefined, { signal: ctx.signal });
  } catch (err) {
    if (err.status === 404) err.message = `No group ${id} in your tenant (${err.message}).`;
    throw err;
  }
  const name = group.name || `Group ${id}`;
  ctx.setTitle(name);
  const path = `/inventory/managedObjects/${encodeURIComponent(id)}/childAssets`;
  let page = 1;
  const members = h('div', { 'aria-live': 'polite' });

  const picker = devicePicker({ signal: ctx.signal });
  const addErrors = h('div', { class: 'error-slot' });
  const addDevice = button('Add device', async () => {
    if (!picker.input.value) throw new Error('Choose a device: search for it by name.');
    await post(path, { managedObject: { id: picker.input.value } }, { signal: ctx.signal });
    await load();
  }, { kind: 'primary', errorTarget: addErrors });

  const sub = field({ label: 'Group', name: 'subgroup', type: 'select', options: [['', 'Loading groups…']] });
  const subErrors = h('div', { class: 'error-slot' });
  const addSub = button('Add subgroup', async () => {
    if (!sub.input.value) throw new Error('Choose a group.');
    await post(path, { managedObject: { id: sub.input.value } }, { signal: ctx.signal });
    await load();
  }, { kind: 'primary', errorTarget: subErrors });

  el.append(h('p', {}, h('a', { href: href('/groups') }, '‹ Groups')),
    pageHeader(name, link(href('/bulkoperations', { group: id }), 'Bulk operation for this group')),
    h('p', { class: 'device-facts' }, h('span', {}, 'ID ', h('strong', {}, group.id))),
    card('Members', members),
    card('Add a device', h('div', { class: 'inline-form' }, picker.el, addDevice), addErrors),
    card('Add a subgroup', h('div', { class: 'inline-form' }, sub, addSub), subErrors));

  async function load() {
    const res = await list(path, 'references', { pageSize: 50, currentPage: page, withTotalPages: true, signal: ctx.signal });
    const rows = res.items.map((r) => r.managedObject).filter(Boolean);
    clear(members,
      table({
        class: 'members',
        empty: 'No members yet: add devices or subgroups below.',
        columns: [
          { title: 'Name', render: (m) => link(href(m.c8y_IsDeviceGroup ? `/groups/${m.id}` : `/devices/${m.id}`), m.name || `Object ${m.id}`) },
          { title: 'Kind', render: (m) => (m.c8y_IsDeviceGroup ? 'Group' : m.c8y_IsDevice ? 'Device' : m.type || 'Object') },
          { title: 'Availability', render: (m) => (m.c8y_IsDevice ? badge(m.c8y_Availability?.status || 'UNKNOWN') : h('span', { class: 'muted' }, '—')) },
          { title: 'ID', class: 'num', render: (m) => m.id },
          {
            title: 'Actions',
            render: (m) => button('Remove', async () => {
              if (!(await confirm('Remove from group', `Remove ${m.name || m.id} from ${name}? It stays in the inventory.`, 'Remove', 'danger'))) return;
              await del(`${path}/${encodeURIComponent(m.id)}`, { signal: ctx.signal });
              await load();
            }, { kind: 'small', class: 'btn-danger', 'aria-label': `Remove ${m.name || m.id}` }),
          },
        ],
        rows,
        rowAttrs: (m) => ({ 'data-member-id': m.id }),
      }),
      res.totalPages > 1 || page > 1 ? pager(res, (n) => { page = n; load().catch(show); }, { label: 'Member pages' }) : null);
  }
  const show = (err) => { if (err.name !== 'AbortError') clear(members, errorBox(err)); };
  clear(members, spinner());
  const subgroups = groups({ signal: ctx.signal }).then((res) => {
    const others = res.items.filter((g) => g.id !== id);
    clear(sub.input, others.length ? others.map((g) => h('option', { value: g.id }, `${g.name || `Group ${g.id}`} · ID ${g.id}`)) : h('option', { value: '' }, 'No other groups'));
  }).catch((err) => subErrors.append(errorBox(err)));
  await Promise.all([load().catch(show), picker.ready.catch((err) => addErrors.append(errorBox(err))), subgroups]);
}
