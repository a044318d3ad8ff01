// Plugins: every plugin of the agent with its status (up, restarts by
// reason), and the decode backlog: per decoder the values waiting and
// the age of the oldest, and the values dropped (GET /lwm2m/plugins). The
// API answers administrators only; the backlog, counted across tenants,
// only to the management tenant's. The page reads the figures again every
// REFRESH_MS while it is shown: they have no realtime channel.
import { get } from '../api.js';
import { h, clear, table, badge, errorBox, spinner, pageHeader, card, formatTime } from '../ui.js';

const REFRESH_MS = 2000;

// age says how long a number of seconds is, in words.
export function age(seconds) {
  if (!Number.isFinite(seconds)) return '';
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

const restartsText = (p) => {
  const why = Object.entries(p.restartsBy || {}).filter(([, n]) => n > 0).map(([r, n]) => `${r} ${n}`);
  return why.length ? `${p.restarts} (${why.join(', ')})` : String(p.restarts ?? 0);
};

export async function render(el, ctx) {
  const status = h('span', { class: 'muted', 'aria-live': 'polite' });
  const plugins = h('div', {});
  const backlog = h('div', {});
  el.append(pageHeader('Plugins', status),
    card('Plugins', h('p', { class: 'muted' }, 'Decoders, custom action plugins and the bundled plugins, as the agent runs them. A plugin that does not answer is restarted with a growing pause; its restarts are counted by reason: crash (it exited), hang (calls or health checks went unanswered), start (it did not start).'), plugins),
    card('Decode backlog', h('p', { class: 'muted' }, 'Values wait here for their decoder while it is down, slow or restarting, and are decoded once it answers. They are counted every few seconds.'), backlog));
  plugins.append(spinner());

  async function load() {
    const res = await get('/lwm2m/plugins', undefined, { signal: ctx.signal });
    clear(plugins, table({
      class: 'plugins',
      empty: 'The agent runs no plugins (see the plugins file, --plugins-config).',
      columns: [
        { title: 'Name', render: (p) => h('span', { class: 'mono' }, p.name) },
        { title: 'Kind', render: (p) => p.kind },
        { title: 'Runs as', render: (p) => p.via },
        { title: 'Status', class: 'plugin-status', render: (p) => badge(p.up ? 'UP' : 'DOWN', p.up ? 'ok' : 'bad') },
        { title: 'Calls', class: 'num', render: (p) => p.calls },
        { title: 'Failed calls', class: 'num', render: (p) => p.errors },
        { title: 'Restarts', class: 'restarts', render: restartsText },
      ],
      rows: res.plugins,
      rowAttrs: (p) => ({ 'data-plugin': p.name }),
    }));
    const bl = res.decodeBacklog;
    if (!bl) {
      clear(backlog, h('p', { class: 'callout info' }, 'The decode backlog is counted across tenants: only the administrators of the management tenant see it.'));
    } else {
      const dropped = Object.entries(bl.dropped || {});
      clear(backlog, table({
        class: 'backlog',
        empty: 'No decoder is configured.',
        columns: [
          { title: 'Decoder', render: (d) => h('span', { class: 'mono' }, d.decoder) },
          { title: 'Values waiting', class: ['num', 'waiting'], render: (d) => d.waiting },
          { title: 'Oldest waiting for', class: 'oldest', render: (d) => (d.waiting ? h('span', { title: formatTime(d.oldest) }, age(d.oldestAgeSeconds)) : h('span', { class: 'muted' }, '—')) },
        ],
        rows: bl.decoders,
        rowAttrs: (d) => ({ 'data-decoder': d.decoder }),
      }), h('p', { class: 'dropped' }, 'Dropped since the agent started, all decoders: ',
        dropped.map(([r, n], i) => [i ? ', ' : '', h('strong', {}, n), ` ${({ full: 'backlog full', expired: 'not decoded in time', store: 'not stored' })[r] || r}`])));
    }
    clear(status, `Updated ${formatTime(new Date().toISOString())}`);
  }

  try {
    await load();
  } catch (err) {
    if (err.name !== 'AbortError') clear(plugins, errorBox(err));
    if (err.status === 403 || err.status === 401) {
      backlog.closest('.card')?.remove();
      return;
    }
  }
  const tick = async () => {
    if (ctx.signal.aborted) return;
    if (document.visibilityState === 'visible') {
      try {
        await load();
      } catch (err) {
        if (err.name !== 'AbortError') clear(status, `Not updated: ${err.message}`);
      }
    }
    timer = setTimeout(tick, REFRESH_MS);
  };
  let timer = setTimeout(tick, REFRESH_MS);
  ctx.signal.addEventListener('abort', () => clearTimeout(timer));
}
