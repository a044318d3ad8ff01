// The device's measurements as charts: one chart per unit, with the
// series the user chose, over the last hour, day or week or a range of
// their own; drag across a chart to zoom. New values arrive as they are
// measured (realtime /measurements/{id}, else the API asked every
// second), and the charts follow the current time. The values of the
// range are a table on demand.
import { list } from '../../api.js';
import { h, clear, table, pager, errorBox, spinner, field, button, time, humanize } from '../../ui.js';
import { setQuery } from '../../router.js';
import { Chart, COLORS, bisect } from '../../lib/chart.js';
import { follow, indicator } from '../../lib/realtime.js';

const SPANS = { '10min': 600e3, hour: 3600e3, day: 86400e3, week: 7 * 86400e3 };
const RANGES = [['10min', 'Last 10 minutes'], ['hour', 'Last hour'], ['day', 'Last 24 hours'], ['week', 'Last 7 days'], ['custom', 'From … to …']];
// MAX_POINTS bounds what the page holds per series, and what it reads of
// a range: the newest this many measurements.
const MAX_POINTS = 20000;
const PAGE = 2000; // the API's largest page
const POLL = 1000;
const OWN = new Set(['id', 'self', 'source', 'time', 'type', 'creationTime', 'lastUpdated']);

// valuesOf answers the numeric series of a measurement:
// [{fragment, series, value, unit}].
export function valuesOf(m) {
  const out = [];
  for (const [fragment, f] of Object.entries(m || {})) {
    if (OWN.has(fragment) || !f || typeof f !== 'object') continue;
    for (const [series, v] of Object.entries(f)) {
      if (v && typeof v === 'object' && typeof v.value === 'number') out.push({ fragment, series, value: v.value, unit: v.unit || '' });
    }
  }
  return out;
}

// toLocalInput and fromLocalInput convert between times and the value of
// an <input type="datetime-local">, in the user's zone.
function toLocalInput(ms) {
  const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60e3);
  return d.toISOString().slice(0, 16);
}
function fromLocalInput(s) {
  const t = new Date(s).getTime();
  return Number.isNaN(t) ? null : t;
}

export async function render(el, ctx) {
  const q = ctx.query;
  let range = SPANS[q.range] || q.range === 'custom' ? q.range : 'hour';
  let custom = { from: Date.parse(q.from) || Date.now() - SPANS.day, to: Date.parse(q.to) || Date.now() };
  let zoom = null;
  let capped = false;
  const chosen = new Set((q.series || '').split(',').filter(Boolean)); // empty: all
  const series = new Map(); // fragment.series -> {key, label, unit, colour, points: [[t, v, id]]}
  const seen = new Set(); // ids of the measurements held
  let latest = 0;

  const windowNow = () => (range === 'custom' ? { ...custom } : { from: Date.now() - SPANS[range], to: Date.now() });
  const view = () => zoom || windowNow();
  const live = () => range !== 'custom';

  // --- controls
  const rangeSel = field({ label: 'Time range', name: 'range', type: 'select', options: RANGES, value: range });
  const fromIn = field({ label: 'From', name: 'from', type: 'datetime-local', value: toLocalInput(custom.from) });
  const toIn = field({ label: 'To', name: 'to', type: 'datetime-local', value: toLocalInput(custom.to) });
  const customBox = h('div', { class: 'custom-range' }, fromIn, toIn, button('Show', async () => {
    const f = fromLocalInput(fromIn.input.value);
    const t = fromLocalInput(toIn.input.value);
    if (f === null || t === null) throw new Error('From and To need a date and a time.');
    if (t <= f) throw new Error('To must be after From.');
    custom = { from: f, to: t };
    zoom = null;
    remember();
    await reload();
  }, { kind: 'primary' }));
  customBox.hidden = range !== 'custom';
  const mode = indicator(POLL);
  const zoomIn = button('Zoom in', () => zoomBy(0.5), { title: 'Show the middle half of the time shown' });
  const zoomOut = button('Zoom out', () => zoomBy(2), { title: 'Show twice the time' });
  const reset = button('Reset zoom', () => setZoom(null));
  const valuesBtn = button('Show values', () => toggleValues(), { 'aria-expanded': 'false' });
  const status = h('p', { class: 'muted chart-status', 'aria-live': 'polite' });
  const chooser = h('fieldset', { class: 'series-chooser' });
  const charts = h('div', { class: 'charts' });
  const values = h('section', { class: 'card values', hidden: true });
  el.append(
    h('div', { class: 'toolbar' }, rangeSel, customBox, h('span', { class: 'spacer' }), zoomIn, zoomOut, reset, valuesBtn, mode),
    chooser, status, h('div', { class: 'charts-wrap' }, spinner()), values);
  const wrap = el.querySelector('.charts-wrap');

  rangeSel.input.addEventListener('change', async () => {
    range = rangeSel.input.value;
    customBox.hidden = range !== 'custom';
    if (range === 'custom') {
      fromIn.input.focus();
      return;
    }
    zoom = null;
    remember();
    await reload().catch((err) => clear(wrap, errorBox(err)));
  });

  function remember() {
    setQuery({
      range: range === 'hour' ? '' : range,
      from: range === 'custom' ? new Date(custom.from).toISOString() : '',
      to: range === 'custom' ? new Date(custom.to).toISOString() : '',
      series: chosen.size ? [...chosen].join(',') : '',
    });
  }

  // --- data
  function add(m) {
    if (!m || m.id === undefined || seen.has(m.id)) return false;
    const t = Date.parse(m.time);
    if (Number.isNaN(t)) return false;
    seen.add(m.id);
    let added = false;
    for (const v of valuesOf(m)) {
      const key = `${v.fragment}.${v.series}`;
      let s = series.get(key);
      if (!s) {
        s = { key, label: `${humanize(v.fragment)} ${v.series}`, fragment: v.fragment, name: v.series, unit: v.unit, colour: series.size % COLORS, points: [] };
        series.set(key, s);
        added = true;
      }
      const p = [t, v.value, m.id];
      const last = s.points[s.points.length - 1];
      if (!last || last[0] <= t) s.points.push(p);
      else s.points.splice(bisect(s.points, t), 0, p);
      if (t > latest) latest = t;
    }
    if (added) renderChooser();
    return true;
  }

  // trim drops what left the window of a live range, and the oldest
  // beyond MAX_POINTS, so that a page left open holds a bounded amount.
  function trim() {
    const from = live() ? windowNow().from : -Infinity;
    for (const s of series.values()) {
      let cut = bisect(s.points, from);
      if (s.points.length - cut > MAX_POINTS) cut = s.points.length - MAX_POINTS;
      if (cut > 0) for (const p of s.points.splice(0, cut)) seen.delete(p[2]);
    }
  }

  async function fetchRange(from, to) {
    series.clear();
    seen.clear();
    latest = 0;
    capped = false;
    let n = 0;
    for (let page = 1; ; page++) {
      const res = await list('/measurement/measurements', 'measurements', {
        source: ctx.id, dateFrom: new Date(from).toISOString(), dateTo: live() && !zoom ? undefined : new Date(to).toISOString(),
        revert: true, pageSize: PAGE, currentPage: page, signal: ctx.signal,
      });
      for (const m of res.items) add(m);
      n += res.items.length;
      if (!res.hasNext || !res.items.length) break;
      if (n >= MAX_POINTS) {
        capped = true;
        break;
      }
    }
  }

  async function reload() {
    clear(wrap, spinner());
    el.dataset.points = '0';
    const v = view();
    await fetchRange(v.from, v.to);
    renderChooser();
    clear(wrap, charts);
    draw();
    if (!values.hidden) showValues(1);
  }

  // since reads what was measured after the newest value held: the
  // polling that stands in for the realtime notifications.
  async function since() {
    const from = latest ? new Date(latest).toISOString() : new Date(windowNow().from).toISOString();
    let got = 0;
    for (let page = 1; page <= 5; page++) {
      const res = await list('/measurement/measurements', 'measurements', { source: ctx.id, dateFrom: from, pageSize: PAGE, currentPage: page, signal: ctx.signal });
      for (const m of res.items) got += add(m) ? 1 : 0;
      if (!res.hasNext) break;
    }
    if (got) changed();
  }

  // --- drawing
  const chartsByUnit = new Map();
  function selected() {
    return [...series.values()].filter((s) => !chosen.size || chosen.has(s.key));
  }

  function renderChooser() {
    const all = [...series.values()];
    clear(chooser, h('legend', {}, 'Series'), all.length ? null : h('span', { class: 'muted' }, 'No measurements in this time range.'),
      all.map((s) => {
        const id = `series-${s.key.replace(/[^A-Za-z0-9_-]/g, '_')}`;
        const box = h('input', { type: 'checkbox', id, checked: !chosen.size || chosen.has(s.key), dataset: { key: s.key } });
        box.addEventListener('change', () => {
          const on = [...chooser.querySelectorAll('input[type=checkbox]')].filter((b) => b.checked).map((b) => b.dataset.key);
          chosen.clear();
          if (on.length !== all.length) for (const k of on) chosen.add(k);
          if (!on.length) chosen.add('-'); // none
          remember();
          draw();
        });
        return h('span', { class: 'series-choice' }, box, h('label', { for: id },
          h('span', { class: `swatch series-${s.colour}`, 'aria-hidden': 'true' }), s.label, s.unit ? h('span', { class: 'muted' }, ` (${s.unit})`) : null));
      }));
  }

  function draw() {
    const v = view();
    const byUnit = new Map();
    for (const s of selected()) {
      if (!byUnit.has(s.unit)) byUnit.set(s.unit, []);
      byUnit.get(s.unit).push(s);
    }
    for (const [unit, c] of chartsByUnit) {
      if (!byUnit.has(unit)) {
        c.destroy();
        c.el.remove();
        chartsByUnit.delete(unit);
      }
    }
    for (const [unit, list] of byUnit) {
      let c = chartsByUnit.get(unit);
      if (!c) {
        c = new Chart({ unit, title: `${list.map((s) => s.label).join(', ')}${unit ? ` in ${unit}` : ''}`, onZoom: (a, b) => setZoom({ from: a, to: b }) });
        chartsByUnit.set(unit, c);
        charts.append(c.el);
      }
      c.set(list, v.from, v.to);
    }
    if (!byUnit.size && series.size) clear(charts, h('p', { class: 'muted' }, 'Choose a series to chart.'));
    else charts.querySelector(':scope > p')?.remove();
    const held = selected().reduce((n, s) => n + s.points.length, 0);
    el.dataset.points = String(held);
    el.dataset.latest = latest ? new Date(latest).toISOString() : '';
    const inView = selected().reduce((n, s) => n + bisect(s.points, v.to + 1) - bisect(s.points, v.from), 0);
    status.textContent = `${inView.toLocaleString()} values from ${new Date(v.from).toLocaleString()} to ${new Date(v.to).toLocaleString()}`
      + (zoom ? ' (zoomed)' : '') + (capped ? `; only the newest ${MAX_POINTS.toLocaleString()} measurements of the range are shown: choose a shorter range for older ones` : '');
    reset.disabled = !zoom;
    zoomOut.disabled = !zoom && range !== 'custom';
  }

  let pending = false;
  function changed() {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      trim();
      draw();
    });
  }

  async function setZoom(z) {
    zoom = z;
    if (capped || (z === null && range === 'custom')) {
      await reload();
      return;
    }
    draw();
  }

  function zoomBy(f) {
    const v = view();
    const mid = (v.from + v.to) / 2;
    const half = ((v.to - v.from) * f) / 2;
    const w = windowNow();
    const z = { from: Math.round(Math.max(w.from, mid - half)), to: Math.round(Math.min(w.to, mid + half)) };
    return setZoom(z.from <= w.from && z.to >= w.to ? null : z);
  }

  // --- values as a table
  function toggleValues() {
    values.hidden = !values.hidden;
    valuesBtn.textContent = values.hidden ? 'Show values' : 'Hide values';
    valuesBtn.setAttribute('aria-expanded', String(!values.hidden));
    if (!values.hidden) return showValues(1);
    return null;
  }

  async function showValues(page) {
    const v = view();
    clear(values, h('h2', {}, 'Values'), spinner());
    try {
      const res = await list('/measurement/measurements', 'measurements', {
        source: ctx.id, dateFrom: new Date(v.from).toISOString(), dateTo: new Date(v.to + 1).toISOString(),
        revert: true, pageSize: 25, currentPage: page, withTotalPages: true, signal: ctx.signal,
      });
      clear(values, h('h2', {}, 'Values'), h('p', { class: 'muted' }, 'Newest first, as the range was when shown.'),
        table({
          class: 'measurement-values',
          empty: 'No measurements in this time range.',
          rows: res.items,
          columns: [
            { title: 'Time', class: 'nowrap', render: (m) => time(m.time) },
            { title: 'Type', render: (m) => m.type || '' },
            { title: 'Values', render: (m) => h('ul', { class: 'plain' }, valuesOf(m).map((x) => h('li', {}, `${humanize(x.fragment)} ${x.series}: `, h('strong', {}, String(x.value)), x.unit ? ` ${x.unit}` : ''))) },
          ],
        }),
        pager(res, (n) => showValues(n), { label: 'Value pages' }));
    } catch (err) {
      if (err.name !== 'AbortError') clear(values, h('h2', {}, 'Values'), errorBox(err));
    }
  }

  // --- start: follow first, so that nothing measured while the range
  // loads is missed; add() drops what both bring.
  await follow(`/measurements/${ctx.id}`, {
    signal: ctx.signal, interval: POLL, onMode: mode.set, poll: since,
    onMessage: (msg) => {
      if (msg?.realtimeAction === 'DELETE') return;
      const m = msg?.data;
      const t = Date.parse(m?.time);
      if (!live() && !(t >= custom.from && t <= custom.to)) return;
      if (add(m)) changed();
    },
  });
  // a live range moves with the clock even when nothing is measured
  const tick = setInterval(() => { if (live() && !zoom) changed(); }, 5000);
  ctx.signal.addEventListener('abort', () => {
    clearInterval(tick);
    for (const c of chartsByUnit.values()) c.destroy();
  }, { once: true });
  await reload();
}
