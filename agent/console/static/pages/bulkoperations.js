// Bulk operations: one operation for every device of a group, created
// from a start time one device every creation ramp. The form makes one
// from a shell command or a firmware version of the repository; the list
// shows each one's progress (pending, executing, successful, failed),
// read again every 2 s while any is running, and cancels one.
import { get, list, post, put } from '../api.js';
import { h, clear, table, pager, time, badge, field, form, card, button, confirm, errorBox, spinner, pageHeader, link } from '../ui.js';
import { href, setQuery } from '../router.js';
import { groups, firmwares, versions, firmwareText } from '../lib/repository.js';

const POLL = 2000;
const RUNNING = new Set(['ACTIVE', 'IN_PROGRESS']);

// localInput is a time as a datetime-local input shows it: the user's
// zone, to the minute.
function localInput(d) {
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

export async function render(el, ctx) {
  let page = Math.max(1, Number(ctx.query.page) || 1);
  const listing = h('div', {});
  const group = field({ label: 'Group', name: 'groupId', type: 'select', required: true, options: [['', 'Loading groups…']] });
  const start = field({ label: 'Start', name: 'start', type: 'datetime-local', required: true, value: localInput(new Date()), hint: 'Your local time; a time past starts at once.' });
  const ramp = field({ label: 'Creation ramp (s)', name: 'ramp', type: 'number', min: '0', max: '86400', step: 'any', value: '0', required: true, hint: 'Seconds between two devices’ operations.' });
  const what = field({ label: 'Operation', name: 'what', type: 'select', options: [['command', 'Shell command'], ['firmware', 'Firmware version']] });
  const command = field({ label: 'Command', name: 'command', placeholder: 'read /3/0/3', autocomplete: 'off', hint: 'One shell command, as on a device’s Shell tab.' });
  const version = field({ label: 'Firmware version', name: 'version', type: 'select', options: [['', 'Loading the repository…']] });
  version.hidden = true;
  const choices = new Map(); // version id → [firmware, version]
  what.input.addEventListener('change', () => {
    const fw = what.input.value === 'firmware';
    version.hidden = !fw;
    command.hidden = fw;
  });

  const create = form({
    fields: [h('div', { class: 'field-grid' }, group, start, ramp, what, command, version)],
    submitLabel: 'Create bulk operation',
    busyLabel: 'Creating…',
    onSubmit: async (v) => {
      const when = new Date(v.start);
      if (Number.isNaN(when.getTime())) throw new Error('Start: give a date and time.');
      let prototype;
      if (v.what === 'firmware') {
        const [fw, ver] = choices.get(v.version) || [];
        if (!fw) throw new Error('Firmware version: choose one of the repository (add versions on the Firmware page).');
        const f = ver.c8y_Firmware || {};
        prototype = { description: `Install firmware ${firmwareText(fw, ver)}`, c8y_Firmware: { name: fw.name, version: f.version, url: f.url } };
      } else {
        const text = v.command.trim();
        if (!text) throw new Error('Command: give the shell command each device runs.');
        prototype = { description: text, c8y_Command: { text } };
      }
      const b = await post('/devicecontrol/bulkoperations', {
        groupId: v.groupId, startDate: when.toISOString(), creationRamp: Number(v.ramp), operationPrototype: prototype,
      }, { signal: ctx.signal });
      page = 1;
      await load(b.id);
    },
  });
  el.append(pageHeader('Bulk operations'), card('New bulk operation', create), card('Bulk operations', listing));

  let shown = []; // the page's bulk operations, by row
  async function load(fresh) {
    clear(listing, spinner());
    const res = await list('/devicecontrol/bulkoperations', 'bulkOperations', { pageSize: 20, currentPage: page, withTotalPages: true, signal: ctx.signal });
    shown = res.items;
    clear(listing,
      table({
        class: 'bulkops',
        empty: 'No bulk operations yet: create one above.',
        columns: [
          { title: 'ID', class: 'num', render: (b) => b.id },
          { title: 'Operation', render: (b) => describe(b.operationPrototype) },
          { title: 'Group', render: (b) => link(href(`/groups/${b.groupId}`), `Group ${b.groupId}`) },
          { title: 'Start', class: 'nowrap', render: (b) => time(b.startDate) },
          { title: 'Ramp', class: 'num', render: (b) => `${b.creationRamp ?? 0} s` },
          { title: 'Status', class: 'bulk-status', render: status },
          { title: 'Progress', class: 'bulk-progress', render: progress },
          { title: 'Actions', class: 'bulk-actions', render: actions },
        ],
        rows: res.items,
        rowAttrs: (b) => ({ 'data-bulk-id': b.id, class: b.id === fresh ? 'fresh' : null }),
      }),
      res.totalPages > 1 || page > 1 ? pager(res, (n) => { page = n; setQuery({ page: n }); load().catch(show); }, { label: 'Bulk operation pages' }) : null);
  }

  function actions(b) {
    if (!RUNNING.has(b.status)) return h('span', { class: 'muted' }, '—');
    return button('Cancel', async () => {
      if (!(await confirm('Cancel bulk operation', `Cancel bulk operation ${b.id}? No more operations are created, and those still pending fail.`, 'Cancel it', 'danger'))) return;
      redraw(await put(`/devicecontrol/bulkoperations/${encodeURIComponent(b.id)}`, { status: 'CANCELED' }, { signal: ctx.signal }));
    }, { kind: 'small', class: 'btn-danger', 'aria-label': `Cancel bulk operation ${b.id}` });
  }

  // redraw puts a bulk operation's new status and progress in its row;
  // the rest of the table stays, and with it the focus of a keyboard user
  // (unless it was on the Cancel button of one that ended).
  function redraw(b) {
    const i = shown.findIndex((x) => x.id === b.id);
    const row = listing.querySelector(`tr[data-bulk-id="${CSS.escape(b.id)}"]`);
    if (i < 0 || !row) return;
    const was = shown[i];
    shown[i] = b;
    clear(row.querySelector('.bulk-status'), status(b));
    clear(row.querySelector('.bulk-progress'), progress(b));
    if (RUNNING.has(was.status) !== RUNNING.has(b.status)) clear(row.querySelector('.bulk-actions'), actions(b));
  }

  const show = (err) => { if (err.name !== 'AbortError') clear(listing, errorBox(err)); };
  const ready = Promise.all([
    groups({ signal: ctx.signal }).then((res) => {
      const want = ctx.query.group || '';
      clear(group.input, res.items.length ? res.items.map((g) => h('option', { value: g.id, selected: g.id === want }, `${g.name || `Group ${g.id}`} · ID ${g.id}`))
        : h('option', { value: '' }, 'No groups: create one on the Groups page'));
    }),
    firmwares({ signal: ctx.signal }).then(async (res) => {
      const opts = [];
      for (const f of res.items) {
        for (const v of await versions(f.id, { signal: ctx.signal })) {
          choices.set(v.id, [f, v]);
          opts.push(h('option', { value: v.id }, firmwareText(f, v)));
        }
      }
      clear(version.input, opts.length ? opts : h('option', { value: '' }, 'The repository has no versions yet'));
    }),
  ]).catch((err) => { if (err.name !== 'AbortError') create.errors.append(errorBox(err)); });
  await Promise.all([load().catch(show), ready]);
  follow(ctx.signal);

  // follow reads the running bulk operations of the page every POLL ms
  // until the user leaves it.
  async function follow(signal) {
    while (!signal.aborted) {
      await new Promise((resolve) => {
        const t = setTimeout(resolve, POLL);
        signal.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
      });
      for (const b of shown.filter((x) => RUNNING.has(x.status))) {
        if (signal.aborted) return;
        try {
          redraw(await get(`/devicecontrol/bulkoperations/${encodeURIComponent(b.id)}`, undefined, { signal }));
        } catch (err) {
          if (err.name === 'AbortError') return;
          // a read that failed is tried at the next round
        }
      }
    }
  }
}

function describe(p = {}) {
  if (p.c8y_Command) return h('code', { class: 'command' }, p.c8y_Command.text);
  if (p.c8y_Firmware) return `Firmware ${p.c8y_Firmware.name} ${p.c8y_Firmware.version}`;
  return p.description || 'Operation';
}

function status(b) {
  return h('span', {}, badge(b.status), b.generalStatus && b.generalStatus !== b.status ? [' ', h('span', { class: 'muted' }, b.generalStatus.toLowerCase().replace(/_/g, ' '))] : null);
}

// progress shows the counts in words and a bar of the devices whose
// operation ended.
function progress(b) {
  const p = b.progress || {};
  const all = p.all || 0;
  const done = (p.successful || 0) + (p.failed || 0);
  return h('div', { class: 'bulk-counts' },
    h('progress', { max: String(Math.max(all, 1)), value: String(done), 'aria-label': `${done} of ${all} devices done` }),
    h('span', {}, `${all} devices: `,
      h('span', { class: 'count-pending' }, `${p.pending || 0} pending`), ', ',
      h('span', { class: 'count-executing' }, `${p.executing || 0} executing`), ', ',
      h('span', { class: 'count-successful' }, `${p.successful || 0} successful`), ', ',
      h('span', { class: 'count-failed' }, `${p.failed || 0} failed`)));
}
