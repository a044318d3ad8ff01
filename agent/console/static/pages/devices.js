// The device list: search by name, endpoint or type (the API's query
// language), availability, last contact, paging.
import { list, session } from '../api.js';
import { h, clear, table, pager, badge, time, errorBox, spinner, pageHeader, field } from '../ui.js';
import { setQuery, href } from '../router.js';

const PAGE_SIZES = [10, 25, 50, 100];

// searchQuery is the inventory query for what the user typed: a word
// matches anywhere in the name, the endpoint or the type. The API's own
// order (by ID: oldest first) keeps a page cheap at any depth; ordering
// by name costs a sort of every device per page.
export function searchQuery(text) {
  const t = text.trim();
  if (!t) return '$filter=(has(c8y_IsDevice))';
  const v = `'*${t.replace(/'/g, "''")}*'`;
  return `$filter=(has(c8y_IsDevice) and (name eq ${v} or lwm2m.endpoint eq ${v} or type eq ${v}))`;
}

// counts keeps how many devices a search finds, for the pager: counting
// reads every device, so it is asked beside the page, never before it,
// and kept for a while, for the user who asked: another user of the tab
// (another tenant) must not see it.
const counts = new Map(); // user and query → {at, total: Promise<number>}
const COUNT_TTL = 30000;

// countOf answers the count of a query; fresh asks the API again, as
// when a page shows more devices than a kept count says there are (some
// were registered since).
function countOf(query, { fresh = false } = {}) {
  const s = session();
  const key = `${s?.tenant}/${s?.user}\n${query}`;
  const c = counts.get(key);
  if (c && !fresh && Date.now() - c.at < COUNT_TTL) return c.total;
  const total = list('/inventory/managedObjects', 'managedObjects', { query, pageSize: 1, withTotalPages: true })
    .then((r) => r.totalElements ?? r.totalPages);
  total.catch(() => counts.delete(key));
  for (const [k, v] of counts) if (Date.now() - v.at >= COUNT_TTL || counts.size >= 50) counts.delete(k);
  counts.set(key, { at: Date.now(), total });
  return total;
}

export async function render(el, ctx) {
  let search = ctx.query.q || '';
  let pageSize = PAGE_SIZES.includes(Number(ctx.query.size)) ? Number(ctx.query.size) : 25;
  let page = Math.max(1, Number(ctx.query.page) || 1);
  let seq = 0;

  const q = field({ label: 'Search', name: 'q', type: 'search', value: search, placeholder: 'name, endpoint or type', autocomplete: 'off' });
  q.classList.add('grow');
  const size = field({ label: 'Per page', name: 'size', type: 'select', value: pageSize, options: PAGE_SIZES });
  const results = h('div', { 'aria-live': 'polite' });
  el.append(pageHeader('Devices'), h('form', { class: 'toolbar', role: 'search', onSubmit: (e) => { e.preventDefault(); page = 1; load(); } },
    q, size, h('button', { type: 'submit', class: 'btn btn-primary' }, 'Search')), results);

  let typing;
  q.input.addEventListener('input', () => {
    clearTimeout(typing);
    typing = setTimeout(() => { page = 1; load(); }, 300);
  });
  size.input.addEventListener('change', () => { pageSize = Number(size.input.value); page = 1; load(); });

  async function load() {
    search = q.input.value;
    const mine = ++seq;
    setQuery({ q: search, page: page > 1 ? page : '', size: pageSize !== 25 ? pageSize : '' });
    if (!results.firstChild) results.append(spinner());
    performance.mark('devices-page-start');
    try {
      const query = searchQuery(search);
      const total = countOf(query);
      const res = await list('/inventory/managedObjects', 'managedObjects', { query, pageSize, currentPage: page, signal: ctx.signal });
      if (mine !== seq) return;
      const pagerSlot = h('div', {});
      const showPager = (n) => clear(pagerSlot, pager(n === undefined ? res : { ...res, totalElements: n, totalPages: Math.max(1, Math.ceil(n / pageSize)) },
        (p) => { page = p; load(); }, { label: 'Device pages' }));
      showPager();
      const seen = (page - 1) * pageSize + res.items.length;
      total.then((n) => (n < seen ? countOf(query, { fresh: true }) : n))
        .then((n) => { if (mine === seq) showPager(n); }, () => {});
      clear(results,
        table({
          caption: search ? `Devices matching “${search}”` : null,
          empty: search ? `No device matches “${search}”.` : 'No devices yet. Register some (bulk registration) or let devices register.',
          class: 'devices',
          columns: [
            { title: 'Name', render: (d) => h('a', { href: href(`/devices/${d.id}`) }, d.name || `Device ${d.id}`) },
            { title: 'Endpoint', render: (d) => h('span', { class: 'mono' }, d.lwm2m?.endpoint || '') },
            { title: 'Type', render: (d) => d.type || '' },
            { title: 'Availability', class: 'availability', render: availability },
            { title: 'Last contact', class: 'last-contact', render: lastContact },
            { title: 'LwM2M', render: (d) => d.lwm2m?.lwm2mVersion || '' },
            { title: 'ID', class: 'num', render: (d) => d.id },
          ],
          rows: res.items,
          rowAttrs: (d) => ({ 'data-device-id': d.id }),
        }),
        pagerSlot);
      performance.mark('devices-page-end');
      performance.measure('devices-page', 'devices-page-start', 'devices-page-end');
    } catch (err) {
      if (err.name === 'AbortError' || mine !== seq) return;
      clear(results, errorBox(err));
    }
  }
  await load();
  live(results, ctx.signal);
}

const availability = (d) => badge(d.c8y_Availability?.status || 'UNKNOWN');
const lastContact = (d) => time(d.c8y_Availability?.lastMessage || d.lwm2m?.lastUpdate);

// live keeps the shown devices' availability and last contact current,
// and drops deleted devices, from the realtime notifications of the
// tenant's devices (with none, the list shows what it read, as a reload
// would).
async function live(results, signal) {
  const { follow } = await import('../lib/realtime.js');
  if (signal?.aborted) return;
  follow('/managedobjects/*', {
    signal, interval: 10000,
    onMode: (mode) => { results.dataset.live = mode; },
    onMessage: (m) => {
      const d = m?.data;
      const rowOf = (id) => results.querySelector(`tr[data-device-id="${CSS.escape(String(id))}"]`);
      // a deletion carries the device's ID alone; the pager's count stays
      // as it was read until the list is paged
      if (m?.realtimeAction === 'DELETE') {
        rowOf(d)?.remove();
        return;
      }
      if (m?.realtimeAction !== 'UPDATE' || !d?.id) return;
      const row = rowOf(d.id);
      if (!row) return;
      for (const [cls, render] of [['availability', availability], ['last-contact', lastContact]]) {
        const cell = row.querySelector(`td.${cls}`);
        if (cell) cell.replaceChildren(render(d));
      }
    },
  });
}
