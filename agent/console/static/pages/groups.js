// Device groups: the tenant's groups (c8y_IsDeviceGroup), and a form that
// creates one; each opens on its own page (group.js).
import { post } from '../api.js';
import { h, clear, table, pager, time, field, form, card, errorBox, spinner, pageHeader, link } from '../ui.js';
import { href, navigate, setQuery } from '../router.js';
import { groups, GROUP } from '../lib/repository.js';

export async function render(el, ctx) {
  let page = Math.max(1, Number(ctx.query.page) || 1);
  const listing = h('div', { 'aria-live': 'polite' });
  const name = field({ label: 'Name', name: 'name', required: true, autocomplete: 'off' });
  const create = form({
    fields: [name],
    submitLabel: 'Create group',
    busyLabel: 'Creating…',
    class: 'inline-form',
    onSubmit: async (v) => {
      const g = await post('/inventory/managedObjects', { name: v.name.trim(), type: GROUP, c8y_IsDeviceGroup: {} }, { signal: ctx.signal });
      navigate(`/groups/${g.id}`);
    },
  });
  el.append(pageHeader('Groups'), card('New group', create), card('Groups', listing));

  async function load() {
    clear(listing, spinner());
    const res = await groups({ pageSize: 20, currentPage: page, withTotalPages: true, signal: ctx.signal });
    clear(listing,
      table({
        class: 'groups',
        empty: 'No groups yet: create one above.',
        columns: [
          { title: 'Name', render: (g) => link(href(`/groups/${g.id}`), g.name || `Group ${g.id}`) },
          { title: 'Created', render: (g) => time(g.creationTime) },
          { title: 'ID', class: 'num', render: (g) => g.id },
          { title: 'Actions', render: (g) => link(href('/bulkoperations', { group: g.id }), 'Bulk operation') },
        ],
        rows: res.items,
        rowAttrs: (g) => ({ 'data-group-id': g.id }),
      }),
      res.totalPages > 1 || page > 1 ? pager(res, (n) => { page = n; setQuery({ page: n }); load().catch(show); }, { label: 'Group pages' }) : null);
  }
  const show = (err) => { if (err.name !== 'AbortError') clear(listing, errorBox(err)); };
  await load().catch(show);
}
