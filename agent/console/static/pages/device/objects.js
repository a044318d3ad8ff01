// The Objects tab: every object, instance and resource of the device
// (GET /lwm2m/devices/{id}/objects) with the definitions of the device
// protocols (names, units, descriptions, validation rules), last known
// values, and per instance the actions its definition allows. Each
// action is an operation (a shell command); its result shows under the
// instance as it arrives, and the values it read replace the shown ones.
import * as api from '../../api.js';
import { h, clear, button, badge, time, errorBox, spinner, field, form, dialog, confirm, formatTime } from '../../ui.js';
import { href } from '../../router.js';
import { parseValue, checkRules, rulesText, typeHint, formatValue, writeCommand } from '../../lib/values.js';
import { resultValues } from '../../lib/shell.js';

// REFRESH_MS is how often the view is read again when the realtime
// notifications are not available.
const REFRESH_MS = 10000;

export async function render(el, ctx) {
  const page = new ObjectsPage(el, ctx);
  await page.start();
}

class ObjectsPage {
  constructor(el, ctx) {
    this.el = el;
    this.ctx = ctx;
    this.id = ctx.id;
    this.view = null;
    this.protocols = new Map(); // objectId → protocol or null
    this.cells = new Map(); // resource path → {value, time, row, res}
    this.instances = new Map(); // instance or object path → {panel, results}
    this.results = new Map(); // path → results element, kept across renders
    this.openObjects = new Set();
    this.seenKey = `lwm2m-agent.seen.${ctx.id}`;
    this.shown = new Set(); // ids of operations whose result the user saw here
    this.filterText = '';
  }

  async start() {
    // definitions as they are now: another page may have changed them
    api.forgetProtocols();
    this.body = h('div', { class: 'objects' });
    this.status = h('span', { class: 'muted', 'aria-live': 'polite' });
    const filter = field({ label: 'Filter', name: 'filter', type: 'search', placeholder: 'object, resource name or path', autocomplete: 'off' });
    filter.classList.add('grow');
    filter.input.addEventListener('input', () => { this.filterText = filter.input.value.trim().toLowerCase(); this.applyFilter(); });
    this.el.append(h('div', { class: 'toolbar' }, filter,
      button('Refresh', () => this.load()),
      button('Expand all', () => this.body.querySelectorAll('details.object').forEach((d) => { d.open = true; })),
      button('Collapse all', () => this.body.querySelectorAll('details.object').forEach((d) => { d.open = false; })),
      h('span', { class: 'spacer' }), this.status), this.body);
    this.body.append(spinner('Loading the objects…'));
    await this.load();
    this.live();
  }

  // live keeps the values current as the device reports them: the
  // agent's /lwm2mvalues/{id} notifications carry each changed path with
  // its value and time (the agent sends at most one a second per
  // device), and the device's operations tell when the panels change.
  // Without the notifications, or after a session was lost, the view is
  // read again (every REFRESH_MS while polling).
  async live() {
    const { follow, indicator } = await import('../../lib/realtime.js');
    if (this.ctx.signal.aborted) return;
    const mode = indicator(REFRESH_MS);
    this.status.before(mode);
    const signal = this.ctx.signal;
    const reread = () => (document.visibilityState === 'visible' ? this.load().catch(() => {}) : undefined);
    const modes = {};
    const onMode = (which) => (m, err) => {
      modes[which] = m;
      const all = Object.values(modes);
      mode.set(all.includes('polling') ? 'polling' : m, err);
      this.el.dataset.live = mode.dataset.mode;
    };
    await follow(`/lwm2mvalues/${this.id}`, {
      signal, interval: REFRESH_MS, poll: reread, onReconnect: reread, onMode: onMode('values'),
      onMessage: (m) => this.applyValues(m?.data?.values),
    });
    await follow(`/operations/${this.id}`, {
      signal, interval: REFRESH_MS, poll: async () => {}, onReconnect: reread, onMode: onMode('operations'),
      onMessage: () => this.refreshSoon(300),
    });
  }

  // applyValues shows the values a notification carries; a path the page
  // does not show yet (a new instance, a resource instance) reads the view.
  applyValues(values) {
    if (!Array.isArray(values) || !this.view) return;
    let unknown = false;
    for (const v of values) {
      const cell = this.cells.get(v.path);
      if (cell && !cell.res.values) {
        if (cell.res.time && v.time < cell.res.time) continue;
        cell.res = { ...cell.res, value: v.value, time: v.time };
        this.showValue(v.path, formatValue(v.value), v.time);
        continue;
      }
      const parent = v.path.split('/').slice(0, 4).join('/');
      const pc = this.cells.get(parent);
      if (pc?.res.values && parent !== v.path) {
        const id = Number(v.path.split('/')[4]);
        const rest = pc.res.values.filter((x) => x.id !== id);
        pc.res = { ...pc.res, values: [...rest, { id, value: v.value, time: v.time }].sort((a, b) => a.id - b.id) };
        this.fillValue(pc, pc.res);
        continue;
      }
      unknown = true;
    }
    if (unknown) this.refreshSoon(300);
  }

  // refreshSoon reads the view again shortly after a change of the
  // device's operations (once for a burst of them).
  refreshSoon(ms = 1300) {
    clearTimeout(this.soon);
    this.soon = setTimeout(() => this.load().catch(() => {}), ms);
  }

  async load() {
    let view;
    try {
      view = await api.get(`/lwm2m/devices/${this.id}/objects`, undefined, { signal: this.ctx.signal });
    } catch (err) {
      if (err.name === 'AbortError') throw err;
      if (!this.view) clear(this.body, errorBox(err));
      else clear(this.status, `Not updated: ${err.message}`);
      throw err;
    }
    await Promise.all(view.objects.filter((o) => !o.raw && !this.protocols.has(o.id)).map(async (o) => {
      try {
        this.protocols.set(o.id, await api.protocol(o.id));
      } catch {
        this.protocols.set(o.id, null);
      }
    }));
    if (this.ctx.signal.aborted) return;
    const shape = (v) => v.objects.map((o) => `${o.path}:${o.instances.map((i) => `${i.path}[${i.resources.map((r) => r.id).join(',')}]`).join(';')}`).join('|');
    if (!this.view || shape(view) !== shape(this.view)) {
      this.view = view;
      this.renderAll();
    } else {
      this.view = view;
      this.update();
    }
    clear(this.status, `Updated ${formatTime(new Date().toISOString())}`);
  }

  // --- rendering ---------------------------------------------------------

  renderAll() {
    const v = this.view;
    this.cells.clear();
    this.instances.clear();
    if (!v.objects.length) {
      clear(this.body, h('p', { class: 'callout info' }, 'This device has no objects yet: it has not registered, or registered none.'));
      return;
    }
    const first = !this.rendered;
    this.rendered = true;
    clear(this.body, v.objects.map((o) => this.renderObject(o, first)));
    this.applyFilter();
  }

  renderObject(o, first) {
    const proto = this.protocols.get(o.id);
    const title = o.name || proto?.name || `Object ${o.id}`;
    const det = h('details', { class: 'card object', 'data-path': o.path });
    det.open = first ? true : this.openObjects.has(o.path);
    det.addEventListener('toggle', () => (det.open ? this.openObjects.add(o.path) : this.openObjects.delete(o.path)));
    if (det.open) this.openObjects.add(o.path);
    const objActions = h('div', { class: 'actions' },
      button('Read object', () => this.run(o.path, `read ${o.path}`), { kind: 'small' }),
      o.multipleInstances ? button('Create instance', () => this.createInstance(o, proto), { kind: 'small' }) : null);
    det.append(
      h('summary', {}, h('h3', {}, title), h('code', {}, o.path),
        o.multipleInstances ? h('span', { class: 'badge badge-neutral' }, 'multiple instances') : null,
        o.raw ? h('span', { class: 'badge badge-warn', title: 'No device protocol defines this object: upload its DDF file' }, 'no definition') : null,
        h('span', { class: 'muted' }, `${o.instances.length} instance${o.instances.length === 1 ? '' : 's'}`)),
      h('div', { class: 'object-body' },
        h('div', { class: 'object-bar' }, proto?.description ? h('p', { class: 'muted' }, proto.description) : null, objActions),
        this.resultsFor(o.path),
        this.opsPanel(o.path, o.operations, true),
        o.instances.map((i) => this.renderInstance(o, i, proto))));
    return det;
  }

  renderInstance(o, inst, proto) {
    const defs = new Map((proto?.resources || []).map((r) => [r.id, r]));
    // an object without a definition may have resources nobody knows
    // yet: a read of the instance shows them
    const readable = o.raw || inst.resources.some((r) => (r.operations || '').includes('R') || r.raw);
    const actions = h('div', { class: 'actions' },
      readable ? button('Read', () => this.run(inst.path, `read ${inst.path}`), { kind: 'small' }) : null,
      readable ? button('Observe', () => this.run(inst.path, `observe ${inst.path}`), { kind: 'small' }) : null,
      readable ? button('Cancel observation', () => this.run(inst.path, `cancelobservation ${inst.path}`), { kind: 'small' }) : null,
      o.multipleInstances ? button('Delete', () => this.deleteInstance(inst), { kind: 'small', class: 'btn-danger' }) : null);
    const rows = [];
    for (const r of inst.resources) rows.push(...this.renderResource(inst, r, defs.get(r.id)));
    const tbl = h('div', { class: 'table-wrap' }, h('table', { class: 'grid resources' },
      h('thead', {}, h('tr', {}, ['ID', 'Resource', 'Value', 'Last known', 'Actions'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, rows.length ? rows : h('tr', {}, h('td', { colspan: 5, class: 'empty' }, 'No resource known yet: Read the instance to see what it holds.')))));
    const box = h('section', { class: 'instance', 'data-path': inst.path, 'aria-label': `Instance ${inst.path}` },
      h('div', { class: 'instance-head' }, h('h4', {}, h('code', {}, inst.path)), this.observedBadge(inst.path), actions),
      tbl, this.resultsFor(inst.path), this.opsPanel(inst.path, inst.operations));
    return box;
  }

  renderResource(inst, r, def) {
    const ops = r.raw ? 'RW' : r.operations || '';
    const desc = def?.description || '';
    const name = r.name || def?.name || `Resource ${r.id}`;
    const nameEl = desc
      ? h('span', { class: 'res-name tip', tabindex: '0', 'data-tip': desc, 'aria-label': `${name}: ${desc}` }, name)
      : h('span', {}, name);
    const valueCell = h('td', { class: 'value', 'data-label': 'Value' });
    const timeCell = h('td', { class: 'nowrap', 'data-label': 'Last known' });
    const row = h('tr', { 'data-path': r.path },
      h('td', { class: 'num', 'data-label': 'ID' }, r.id),
      h('td', { 'data-label': 'Resource' }, nameEl, ' ', this.observedBadge(r.path),
        h('div', { class: 'muted' }, [r.type, ops && `(${ops})`, r.mandatory ? 'mandatory' : null].filter(Boolean).join(' '))),
      valueCell, timeCell,
      h('td', { 'data-label': 'Actions' }, h('div', { class: 'actions' },
        ops.includes('R') ? button('Read', () => this.run(inst.path, `read ${r.path}`), { kind: 'small', 'aria-label': `Read ${r.path}` }) : null,
        ops.includes('R') ? button('Observe', () => this.run(inst.path, `observe ${r.path}`), { kind: 'small', 'aria-label': `Observe ${r.path}` }) : null,
        ops.includes('R') ? button('Cancel', () => this.run(inst.path, `cancelobservation ${r.path}`), { kind: 'small', title: 'Cancel observation', 'aria-label': `Cancel observation of ${r.path}` }) : null,
        ops.includes('W') ? button('Write', () => this.openEditor(inst, r, def, row), { kind: 'small', 'aria-label': `Write ${r.path}` }) : null,
        ops.includes('E') ? button('Execute', () => this.openExecute(inst, r, row), { kind: 'small', 'aria-label': `Execute ${r.path}` }) : null)));
    const cell = { value: valueCell, time: timeCell, row, res: r, def };
    this.cells.set(r.path, cell);
    this.fillValue(cell, r);
    return [row];
  }

  fillValue(cell, r) {
    const unit = r.units || cell.def?.unit || '';
    if (r.values) {
      clear(cell.value, r.values.length ? h('ul', { class: 'chips' }, r.values.map((v) => h('li', { title: formatTime(v.time) }, `${v.id}: ${formatValue(v.value)}${unit ? ` ${unit}` : ''}`))) : h('span', { class: 'muted' }, '—'));
      const last = r.values.map((v) => v.time).filter(Boolean).sort().pop();
      clear(cell.time, time(last));
    } else if (r.value !== undefined && r.value !== null) {
      clear(cell.value, formatValue(r.value), unit ? h('span', { class: 'muted' }, ` ${unit}`) : null);
      clear(cell.time, time(r.time));
    } else {
      clear(cell.value, h('span', { class: 'muted' }, '—'));
      clear(cell.time, time(null));
    }
  }

  // showValue puts a value that an operation's result read in place.
  showValue(path, value, when) {
    const cell = this.cells.get(path);
    if (cell) {
      const unit = cell.res.units || cell.def?.unit || '';
      clear(cell.value, value, unit ? h('span', { class: 'muted' }, ` ${unit}`) : null);
      clear(cell.time, time(when));
      cell.value.classList.remove('value-changed');
      void cell.value.offsetWidth; // restart the highlight
      cell.value.classList.add('value-changed');
      return;
    }
    // a resource instance /O/I/R/RI of a multiple resource
    const parent = path.split('/').slice(0, 4).join('/');
    if (this.cells.has(parent) && parent !== path) this.refreshSoon();
  }

  update() {
    for (const o of this.view.objects) {
      this.updatePanel(o.path, o.operations);
      for (const i of o.instances) {
        this.updatePanel(i.path, i.operations);
        for (const r of i.resources) {
          const cell = this.cells.get(r.path);
          if (!cell) continue;
          const before = cell.value.textContent;
          cell.res = r;
          this.fillValue(cell, r);
          if (before !== cell.value.textContent) {
            cell.value.classList.remove('value-changed');
            void cell.value.offsetWidth;
            cell.value.classList.add('value-changed');
          }
        }
      }
    }
    this.updateObserved();
  }

  applyFilter() {
    const t = this.filterText;
    for (const det of this.body.querySelectorAll('details.object')) {
      let any = false;
      const objMatch = !t || det.querySelector('summary').textContent.toLowerCase().includes(t);
      for (const row of det.querySelectorAll('tr[data-path]')) {
        const m = objMatch || row.textContent.toLowerCase().includes(t) || row.dataset.path.includes(t);
        row.hidden = !m;
        any = any || m;
      }
      for (const inst of det.querySelectorAll('.instance')) {
        inst.hidden = !objMatch && !inst.querySelector('tr[data-path]:not([hidden])');
      }
      det.hidden = !objMatch && !any;
      if (t && !det.hidden) det.open = true;
    }
  }

  // --- observation state, from the operations ---------------------------

  observedBadge(path) {
    const b = h('span', { class: 'badge badge-info observed', 'data-observed': path, hidden: !this.isObserved(path) }, 'observed');
    return b;
  }

  // isObserved: the last observe or cancel of the path that ended well,
  // among the operations the view lists.
  isObserved(path) {
    let last = null;
    for (const op of this.allHistory()) {
      const [cmd, p] = String(op.text).trim().split(/\s+/);
      if (p !== path || op.status !== 'SUCCESSFUL') continue;
      if ((cmd === 'observe' || cmd === 'cancelobservation') && (!last || op.lastUpdated > last.lastUpdated)) last = { cmd, lastUpdated: op.lastUpdated };
    }
    return last?.cmd === 'observe';
  }

  allHistory() {
    const all = [];
    for (const o of this.view?.objects || []) {
      all.push(...(o.operations?.history || []));
      for (const i of o.instances) all.push(...(i.operations?.history || []));
    }
    return all;
  }

  updateObserved() {
    for (const b of this.body.querySelectorAll('[data-observed]')) b.hidden = !this.isObserved(b.dataset.observed);
  }

  // --- operations of an instance -----------------------------------------

  seen() {
    try {
      return JSON.parse(sessionStorage.getItem(this.seenKey) || '{}');
    } catch {
      return {};
    }
  }

  markSeen(path) {
    const s = this.seen();
    s[path] = new Date().toISOString();
    sessionStorage.setItem(this.seenKey, JSON.stringify(s));
  }

  // since: results that ended after this are unread; the first visit of
  // the device in this tab counts from then.
  since(path) {
    const s = this.seen();
    if (!s._opened) {
      s._opened = new Date().toISOString();
      sessionStorage.setItem(this.seenKey, JSON.stringify(s));
    }
    return s[path] || s._opened;
  }

  unread(path, ops) {
    const since = this.since(path);
    return (ops?.history || []).filter((op) => op.lastUpdated > since && !this.shown.has(op.id)).length;
  }

  // opsPanel lists the operations of an instance (or of the object
  // itself: hidden while there are none).
  opsPanel(path, ops, hideEmpty = false) {
    const panel = h('details', { class: 'ops-panel', 'data-ops': path });
    panel.hideEmpty = hideEmpty;
    // a toggle that closes has been open: what was shown is seen (an
    // open and a close in quick succession fire one toggle event)
    panel.addEventListener('toggle', () => {
      this.markSeen(path);
      this.updatePanel(path, this.opsOf(path));
    });
    this.instances.set(path, { panel });
    this.fillPanel(panel, path, ops);
    return panel;
  }

  opsOf(path) {
    for (const o of this.view.objects) {
      if (o.path === path) return o.operations;
      for (const i of o.instances) if (i.path === path) return i.operations;
    }
    return null;
  }

  updatePanel(path, ops) {
    const p = this.instances.get(path);
    if (p) this.fillPanel(p.panel, path, ops);
  }

  // fillPanel fills the panel in place: its summary element stays, so
  // that keyboard focus and a click on it survive a refresh.
  fillPanel(panel, path, ops) {
    const pending = ops?.pending || { count: 0, operations: [] };
    const history = ops?.history || [];
    if (!panel.summaryEl) {
      panel.summaryEl = h('summary', {});
      panel.bodyEl = h('div', {});
      panel.append(panel.summaryEl, panel.bodyEl);
    }
    if (panel.open) this.markSeen(path);
    const unread = panel.open ? 0 : this.unread(path, ops);
    const since = this.since(path);
    panel.hidden = panel.hideEmpty && !pending.count && !history.length;
    // unchanged: left as it is, so that focus and a click in it stay
    const key = JSON.stringify([pending, history, unread, since, history.map((op) => this.shown.has(op.id))]);
    if (panel.key === key) return;
    panel.key = key;
    clear(panel.summaryEl, 'Operations: ',
      h('span', { class: 'ops-pending' }, `${pending.count} pending`), ' · ',
      `${history.length} recent`,
      unread ? [' · ', h('span', { class: 'count', 'aria-label': `${unread} unread results` }, unread), ' unread'] : null);
    clear(panel.bodyEl,
      pending.operations.length ? h('ul', { class: 'ops-list', 'aria-label': 'Pending' }, pending.operations.map((op) =>
        h('li', {}, badge(op.status), h('code', {}, op.text), h('span', { class: 'muted' }, op.attempts ? `${op.attempts} attempts · ` : '', time(op.creationTime))))) : null,
      history.length ? h('ul', { class: 'ops-list', 'aria-label': 'Recent' }, history.map((op) =>
        h('li', { class: op.lastUpdated > since && !this.shown.has(op.id) ? 'unread' : null }, badge(op.status), h('code', {}, op.text), time(op.lastUpdated),
          op.result || op.failureReason ? h('pre', {}, op.result || op.failureReason) : null))) : h('p', { class: 'muted' }, 'No operations ended yet.'),
      h('p', {}, h('a', { href: href(`/devices/${this.id}/shell`, { filter: path }) }, `All operations of ${path} ›`)));
  }

  // --- actions -------------------------------------------------------------

  resultsFor(path) {
    let r = this.results.get(path);
    if (!r) {
      r = h('div', { class: 'results', 'aria-live': 'polite', 'data-results': path });
      this.results.set(path, r);
    }
    return r;
  }

  // run creates a command's operation and shows it under the instance
  // until it ends. A refused command throws the API's error, which the
  // button shows beside itself.
  async run(where, text, { onEnd } = {}) {
    const op = await api.runCommand(this.id, text, { signal: this.ctx.signal });
    this.follow(where, text, op, onEnd);
    return op;
  }

  follow(where, text, op, onEnd) {
    const box = this.resultsFor(where);
    const status = h('span', {});
    const out = h('div', { class: 'out' });
    const entry = h('div', { class: 'result', 'data-op': op.id }, status, h('code', {}, text), h('span', { class: 'muted' }, formatTime(op.creationTime)), out);
    box.prepend(entry);
    while (box.children.length > 5) box.lastChild.remove();
    this.shown.add(op.id);
    api.waitForOperation(op, {
      signal: this.ctx.signal,
      onUpdate: (cur) => {
        clear(status, badge(cur.status));
        if (cur.status === 'PENDING' && cur.attempts) clear(out, h('span', { class: 'muted' }, `waiting for the device (attempt ${cur.attempts})`));
      },
    }).then((done) => {
      entry.classList.toggle('failed', done.status === 'FAILED');
      const text2 = done.status === 'SUCCESSFUL' ? done.c8y_Command?.result || '' : done.failureReason || '';
      entry.replaceChild(h('pre', { class: 'out' }, text2), out);
      if (done.status === 'SUCCESSFUL') {
        for (const v of resultValues(done.c8y_Command?.result)) this.showValue(v.path, v.value, done.lastUpdated || new Date().toISOString());
      }
      this.refreshSoon();
      onEnd?.(done);
    }).catch((err) => {
      if (err.name !== 'AbortError') entry.replaceChild(errorBox(err), out);
    });
  }

  closeEditors() {
    for (const r of this.body.querySelectorAll('tr.editor-row')) r.remove();
  }

  // inlineEditor puts a form in a row under a resource's row: Cancel and
  // Escape close it, and the focus returns to the button that opened it
  // (found again by its label: the row may have been drawn anew).
  inlineEditor(row, opener, f) {
    const editor = h('tr', { class: 'editor-row' });
    const label = opener?.getAttribute('aria-label');
    const close = () => {
      editor.remove();
      const again = label && this.body.querySelector(`button[aria-label="${CSS.escape(label)}"]`);
      (again || opener)?.focus();
    };
    editor.addEventListener('keydown', (e) => {
      if (e.key === 'Escape') {
        e.preventDefault();
        close();
      }
    });
    editor.append(h('td', { colspan: 5 }, f(close)));
    row.after(editor);
    return editor;
  }

  openEditor(inst, r, def, row) {
    this.closeEditors();
    const type = r.type || def?.type || 'STRING';
    const validation = def?.validation;
    const multiple = Boolean(r.multiple || r.values);
    const cur = r.value !== undefined && r.value !== null ? formatValue(r.value) : '';
    const inputs = [];
    let valueField;
    if (type === 'BOOLEAN') {
      valueField = field({ label: `New value of ${r.path}`, name: 'value', type: 'select', value: cur === 'true' || cur === '1' ? 'true' : 'false', options: [['true', 'true'], ['false', 'false']] });
    } else {
      valueField = field({ label: `New value of ${r.path}`, name: 'value', value: cur, hint: `${typeHint[type] || 'text'}${def?.unit ? `, in ${def.unit}` : ''}`,
        inputmode: ['INTEGER', 'UNSIGNED_INTEGER'].includes(type) ? 'numeric' : type === 'FLOAT' ? 'decimal' : null, autocomplete: 'off', spellcheck: 'false' });
    }
    if (multiple) inputs.push(field({ label: 'Resource instance', name: 'ri', value: r.values?.[0]?.id ?? 0, inputmode: 'numeric', required: true }));
    inputs.push(valueField);
    const rules = rulesText(validation);
    const lookup = (p) => this.cells.get(p)?.res?.value;
    this.inlineEditor(row, row.querySelector('button[aria-label^="Write"]'), (close) => form({
      class: 'inline-form',
      fields: inputs,
      submitLabel: 'Write',
      busyLabel: 'Writing…',
      extra: [h('button', { type: 'button', class: 'btn', onClick: close }, 'Cancel'),
        rules ? h('p', { class: 'rules' }, `Rules: ${rules}`) : null],
      onSubmit: async (v) => {
        let path = r.path;
        if (multiple) {
          if (!/^\d+$/.test(v.ri)) throw new Error(`resource instance "${v.ri}" is not a number`);
          path = `${r.path}/${Number(v.ri)}`;
        }
        const parsed = parseValue(type, v.value);
        if (parsed.error) {
          valueField.input.setAttribute('aria-invalid', 'true');
          throw new Error(`write ${path}: ${parsed.error}`);
        }
        const problem = checkRules(path, parsed.value, validation, lookup);
        if (problem) {
          valueField.input.setAttribute('aria-invalid', 'true');
          throw new Error(problem);
        }
        valueField.input.removeAttribute('aria-invalid');
        await this.run(inst.path, writeCommand(path, v.value, type), {
          onEnd: (done) => {
            // read the value back, so that what the device holds now shows
            if (done.status === 'SUCCESSFUL' && (r.operations || 'R').includes('R')) this.run(inst.path, `read ${path}`).catch(() => {});
          },
        });
        close();
      },
    }));
    valueField.input.focus();
    if (valueField.input.select) valueField.input.select();
  }

  openExecute(inst, r, row) {
    this.closeEditors();
    const args = field({ label: `Arguments of ${r.path}`, name: 'args', hint: 'optional, sent as written, e.g. 0=\'x\',1', autocomplete: 'off', spellcheck: 'false' });
    this.inlineEditor(row, row.querySelector('button[aria-label^="Execute"]'), (close) => form({
      class: 'inline-form',
      fields: [args],
      submitLabel: 'Execute',
      extra: [h('button', { type: 'button', class: 'btn', onClick: close }, 'Cancel')],
      onSubmit: async (v) => {
        await this.run(inst.path, `execute ${r.path}${v.args.trim() ? ` ${v.args.trim()}` : ''}`);
        close();
      },
    }));
    args.input.focus();
  }

  async createInstance(o, proto) {
    const writable = (proto?.resources || []).filter((r) => (r.operations || '').includes('W') && !r.multiple);
    const fields = writable.map((r) => field({
      label: `${r.id} ${r.name}`, name: String(r.id), hint: `${typeHint[r.type] || 'text'}${r.unit ? `, in ${r.unit}` : ''}; empty: not sent`,
      type: r.type === 'BOOLEAN' ? 'select' : 'text', options: r.type === 'BOOLEAN' ? [['', '—'], ['true', 'true'], ['false', 'false']] : undefined, autocomplete: 'off',
    }));
    await dialog({
      title: `New instance of ${o.name || proto?.name || o.path}`,
      wide: fields.length > 4,
      body: (close) => [
        h('p', { class: 'muted' }, `Creates ${o.path}/… on the device with the values given (create ${o.path} {JSON}).`),
        form({
          fields,
          submitLabel: 'Create',
          busyLabel: 'Creating…',
          extra: [h('button', { type: 'button', class: 'btn', onClick: () => close() }, 'Cancel')],
          onSubmit: async (v) => {
            const json = {};
            for (const r of writable) {
              const text = v[String(r.id)];
              if (text === '' || text === undefined) continue;
              const parsed = parseValue(r.type, text);
              if (parsed.error) throw new Error(`${r.id} ${r.name}: ${parsed.error}`);
              const problem = checkRules(`${o.path}/new/${r.id}`, parsed.value, r.validation);
              if (problem) throw new Error(problem);
              json[r.id] = typeof parsed.value === 'number' || typeof parsed.value === 'boolean' ? parsed.value : text;
            }
            const text = Object.keys(json).length ? `create ${o.path} ${JSON.stringify(json)}` : `create ${o.path}`;
            await this.run(o.path, text);
            close(true);
          },
        }),
      ],
    });
  }

  async deleteInstance(inst) {
    if (!(await confirm(`Delete ${inst.path}?`, `The device deletes the instance ${inst.path} and its values (delete ${inst.path}).`, 'Delete', 'danger'))) return;
    const objectPath = inst.path.split('/').slice(0, 2).join('/');
    await this.run(objectPath, `delete ${inst.path}`);
  }
}

