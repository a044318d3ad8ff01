// A paged table of a device's items (events, alarms, operations) that
// stays current: notifications of its channel update the rows shown and
// put new items on the first page; without notifications the page shown
// is read again every interval. The Events, Alarms and Control tabs are
// this with their own columns, filters and reading of pages.
import { h, clear, table, pager, errorBox, spinner } from '../ui.js';
import { follow, indicator } from './realtime.js';

// liveList fills el and answers {reload(page), upsert(item)}.
//   channel   the realtime channel ('/alarms/12')
//   load      ({currentPage, pageSize, signal}) → a list() answer
//   accept    (item) → whether an item belongs in the list as filtered
//   order     (a, b) → the order of the rows (newest first)
//   columns, empty, class, label: for ui.table and ui.pager
//   toolbar   elements before the table (filters)
export function liveList(el, { signal, channel, load, accept = () => true, order, columns, empty, class: cls, label, toolbar = [], pageSize = 20, interval = 2000 }) {
  const mode = indicator(interval);
  const body = h('div', { class: 'live-list', 'aria-live': 'polite' }, spinner());
  el.append(h('div', { class: 'toolbar' }, toolbar, h('span', { class: 'spacer' }), mode), body);
  let page = { items: [], currentPage: 1, pageSize, hasNext: false, hasPrev: false };
  let seq = 0;
  const fresh = new Set(); // ids that arrived live, shown highlighted once
  // where a keyboard user's focus was in the list: a redraw (a change the
  // user made, or one that arrived) puts it back there
  let focused = null;
  body.addEventListener('focusout', (e) => {
    if (e.relatedTarget && !body.contains(e.relatedTarget)) focused = null;
  });
  body.addEventListener('focusin', (e) => {
    const row = e.target.closest('tr[data-id]');
    focused = row ? { id: row.dataset.id, text: e.target.innerText, index: [...body.querySelectorAll('tr[data-id]')].indexOf(row) } : null;
  });

  function render() {
    const active = document.activeElement;
    const restore = focused && (!active || active === document.body || body.contains(active));
    clear(body,
      table({
        columns, empty, class: cls, rows: page.items,
        rowAttrs: (it) => ({ 'data-id': it.id, class: fresh.has(it.id) ? 'row-new' : null }),
      }),
      page.items.length || page.currentPage > 1 ? pager(page, (n) => reload(n), { label }) : null);
    fresh.clear();
    if (restore) refocus();
  }

  // refocus: the same action of the same row, else its first action, else
  // the row now at its place, else the list itself
  function refocus() {
    const rows = [...body.querySelectorAll('tr[data-id]')];
    const row = rows.find((r) => r.dataset.id === focused.id) || rows[Math.min(focused.index, rows.length - 1)];
    const buttons = row ? [...row.querySelectorAll('button:not([disabled])')] : [];
    let target = buttons.find((b) => b.innerText === focused.text) || buttons[0] || row;
    if (!target) {
      body.tabIndex = -1;
      target = body;
    } else if (target === row) row.tabIndex = -1;
    target.focus();
  }

  async function reload(n = page.currentPage, { quiet = false } = {}) {
    const mine = ++seq;
    if (!quiet) clear(body, spinner());
    try {
      const res = await load({ currentPage: n, pageSize, signal });
      if (mine !== seq) return;
      page = res;
      render();
    } catch (err) {
      if (err.name === 'AbortError' || mine !== seq) return;
      if (quiet) throw err;
      clear(body, errorBox(err));
    }
  }

  // upsert puts an item as the agent now shows it into the list: in
  // place when it is shown, on the first page when it is new and belongs.
  function upsert(item, action = 'UPDATE') {
    if (!item || item.id === undefined) return;
    const i = page.items.findIndex((x) => String(x.id) === String(item.id));
    if (action === 'DELETE' || (i >= 0 && !accept(item))) {
      if (i < 0) return;
      page.items.splice(i, 1);
    } else if (i >= 0) {
      page.items[i] = { ...page.items[i], ...item };
    } else if (page.currentPage === 1 && accept(item)) {
      page.items.unshift(item);
      fresh.add(item.id);
      if (order) page.items.sort(order);
      if (page.items.length > page.pageSize) {
        page.items.length = page.pageSize;
        page.hasNext = true;
      }
      if (page.totalElements !== undefined) page.totalElements++;
    } else {
      return;
    }
    render();
  }

  const ready = follow(channel, {
    signal, interval, onMode: mode.set,
    onMessage: (msg) => upsert(msg?.data, msg?.realtimeAction),
    poll: () => reload(page.currentPage, { quiet: true }),
  });
  return { reload, upsert, ready };
}

// newestFirst reads page n of a collection the API lists oldest first
// (operations), as if it listed newest first: the last items first. It
// asks for the total, then for the one or two pages of the API holding
// the items wanted.
export async function newestFirst(list, path, collection, { currentPage = 1, pageSize = 20, signal, ...query }) {
  const head = await list(path, collection, { ...query, pageSize, currentPage: 1, withTotalPages: true, signal });
  const total = head.totalElements ?? head.items.length;
  const end = total - (currentPage - 1) * pageSize; // exclusive, in oldest-first positions
  const start = Math.max(0, end - pageSize);
  const items = [];
  if (end > 0) {
    for (let p = Math.floor(start / pageSize) + 1; (p - 1) * pageSize < end; p++) {
      const got = p === 1 ? head : await list(path, collection, { ...query, pageSize, currentPage: p, signal });
      got.items.forEach((it, k) => {
        const pos = (p - 1) * pageSize + k;
        if (pos >= start && pos < end) items.push(it);
      });
    }
  }
  const totalPages = Math.max(1, Math.ceil(total / pageSize));
  return { items: items.reverse(), currentPage, pageSize, totalPages, totalElements: total, hasNext: currentPage < totalPages, hasPrev: currentPage > 1 };
}
