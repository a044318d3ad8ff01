// The device's events, newest first, with their time, type and text;
// new ones appear as they happen (realtime /events/{id}).
import { list } from '../../api.js';
import { h, time, kvTable } from '../../ui.js';
import { liveList } from '../../lib/livelist.js';

// fields an event always has; the others are its fragments
const OWN = new Set(['id', 'self', 'source', 'time', 'creationTime', 'lastUpdated', 'type', 'text']);

export async function render(el, ctx) {
  const newest = (a, b) => Date.parse(b.time) - Date.parse(a.time) || Number(b.id) - Number(a.id);
  const l = liveList(el, {
    signal: ctx.signal,
    channel: `/events/${ctx.id}`,
    class: 'events',
    label: 'Event pages',
    empty: 'No events of this device.',
    order: newest,
    load: (p) => list('/event/events', 'events', { source: ctx.id, ...p, withTotalPages: true }),
    columns: [
      { title: 'Time', class: 'nowrap', render: (e) => time(e.time) },
      { title: 'Type', render: (e) => h('span', { class: 'mono' }, e.type) },
      { title: 'Text', render: (e) => e.text || '' },
      { title: 'Details', render: (e) => details(e) },
    ],
  });
  await l.ready;
  await l.reload(1);
}

function details(e) {
  const extra = Object.fromEntries(Object.entries(e).filter(([k]) => !OWN.has(k)));
  return Object.keys(extra).length ? kvTable(extra) : '';
}
