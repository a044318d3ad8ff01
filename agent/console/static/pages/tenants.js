// Tenants, for the management tenant: every tenant, and a new one with
// its administrator. The menu offers the page only to the management
// tenant's users, and the API refuses everyone but its administrators,
// whose refusal the page shows.
import { list, post } from '../api.js';
import { h, clear, table, pager, time, badge, field, form, card, errorBox, spinner, pageHeader } from '../ui.js';
import { setQuery } from '../router.js';

const PAGE_SIZE = 25;

export async function render(el, ctx) {
  let page = Math.max(1, Number(ctx.query.page) || 1);
  const listing = h('div', { 'aria-live': 'polite' });
  const done = h('div', { class: 'result-slot', role: 'status' });
  const id = field({ label: 'Tenant ID', name: 'id', required: true, autocomplete: 'off', autocapitalize: 'none', spellcheck: 'false',
    hint: '1 to 32 lower-case letters, digits or “-”, starting with a letter or digit.' });
  const admin = field({ label: 'Administrator', name: 'adminName', required: true, value: 'admin', autocomplete: 'off', autocapitalize: 'none' });
  const pass = field({ label: 'Administrator’s password', name: 'adminPass', type: 'password', required: true, autocomplete: 'new-password' });
  const create = form({
    fields: [h('div', { class: 'field-grid' }, id, admin, pass)],
    submitLabel: 'Create tenant',
    busyLabel: 'Creating…',
    onSubmit: async (v) => {
      clear(done);
      const t = await post('/tenant/tenants', { id: v.id.trim(), adminName: v.adminName.trim(), adminPass: v.adminPass }, { signal: ctx.signal });
      pass.input.value = '';
      id.input.value = '';
      clear(done, h('div', { class: 'callout ok' }, 'Created tenant ', h('strong', { class: 'mono' }, t.id),
        '. Its administrator logs in with tenant ', h('strong', { class: 'mono' }, t.id), ' and user ', h('strong', { class: 'mono' }, t.adminName || v.adminName), '.'));
      await load(t.id);
    },
  });
  const creating = card('Create a tenant', h('p', { class: 'muted' }, 'A tenant sees only its own devices and data; its administrator is its first user.'), done, create);
  el.append(pageHeader('Tenants'), creating, card('All tenants', listing));

  async function load(fresh) {
    setQuery({ page: page > 1 ? page : '' });
    if (!listing.firstChild) listing.append(spinner());
    const res = await list('/tenant/tenants', 'tenants', { pageSize: PAGE_SIZE, currentPage: page, withTotalPages: true, signal: ctx.signal });
    clear(listing,
      table({
        class: 'tenants',
        columns: [
          { title: 'ID', render: (t) => h('span', { class: 'mono' }, t.id) },
          { title: 'Domain', render: (t) => t.domain || '' },
          { title: 'Status', render: (t) => badge(t.status, t.status === 'ACTIVE' ? 'ok' : null) },
          { title: 'Created', render: (t) => time(t.creationTime) },
        ],
        rows: res.items,
        rowAttrs: (t) => ({ 'data-tenant': t.id, class: t.id === fresh ? 'fresh' : null }),
      }),
      res.totalPages > 1 || page > 1 ? pager(res, (n) => { page = n; load().catch(show); }, { label: 'Tenant pages' }) : null);
  }
  const show = (err) => { if (err.name !== 'AbortError') clear(listing, errorBox(err)); };
  await load().catch((err) => {
    show(err);
    // a user the API refuses cannot create tenants either
    if (err.status === 403) creating.remove();
  });
}
