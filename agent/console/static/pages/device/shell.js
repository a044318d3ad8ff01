// The Shell tab: a command line with the shell grammar (docs/shell.md),
// completion of commands and paths, history with the arrow keys, and the
// device's operations with their results as they end, whoever created
// them. ?filter=/3303/0 shows only the operations of that path.
import * as api from '../../api.js';
import { h, clear, badge, errorBox, formatTime, uid } from '../../ui.js';
import { href } from '../../router.js';
import { check, complete, commonPrefix, commands } from '../../lib/shell.js';

const HISTORY_KEY = 'lwm2m-agent.shell-history';
const HISTORY_MAX = 100;
const PAGE = 30;
const MAX_ENTRIES = 500;

export async function render(el, ctx) {
  const shell = new Shell(el, ctx);
  await shell.start();
}

// mentions says whether an operation's text names path or a path below it.
function mentions(text, path) {
  return String(text).split(/[\s{}",:]+/).some((w) => w === path || w.startsWith(`${path}/`));
}

class Shell {
  constructor(el, ctx) {
    this.el = el;
    this.ctx = ctx;
    this.id = ctx.id;
    this.filter = ctx.query.filter || '';
    this.entries = new Map(); // op id → {el, op}
    this.model = { paths: [] };
    this.history = loadHistory();
    this.hpos = this.history.length;
    this.draft = '';
    this.items = [];
    this.active = -1;
    this.oldestPage = 0;
  }

  async start() {
    const listId = uid('suggest');
    this.log = h('div', { class: 'shell-log', role: 'log', 'aria-live': 'polite', 'aria-label': 'Operations and results', tabindex: '0' });
    this.more = h('div', {});
    this.input = h('input', {
      id: uid('cmd'), name: 'command', type: 'text', autocomplete: 'off', autocapitalize: 'none', spellcheck: 'false',
      role: 'combobox', 'aria-autocomplete': 'list', 'aria-expanded': 'false', 'aria-controls': listId,
      placeholder: 'read /3/0   (Tab completes, ↑ ↓ history)',
    });
    this.list = h('ul', { id: listId, class: 'suggest', role: 'listbox', hidden: true, 'aria-label': 'Completions' });
    this.errors = h('div', { class: 'form-errors', tabindex: '-1' });
    const formEl = h('form', { class: 'shell-form', onSubmit: (e) => { e.preventDefault(); this.submit(); } },
      h('label', { for: this.input.id, class: 'sr-only' }, 'Command'),
      h('div', { class: 'shell-input' }, this.list, this.input, h('button', { type: 'submit', class: 'btn btn-primary' }, 'Run')),
      this.errors);
    this.el.append(...[
      this.filter ? h('p', { class: 'callout info' }, `Operations of ${this.filter} only. `, h('a', { href: href(`/devices/${this.id}/shell`) }, 'Show all operations')) : null,
      h('div', { class: 'shell' }, h('div', {}, this.more, this.log), formEl),
      h('p', { class: 'shell-help' }, 'Commands: ', commands.map((c) => c.name).join(', '),
        '. Tab completes commands and paths; ↑ and ↓ go through earlier commands; Enter runs. The grammar: docs/shell.md.')].filter(Boolean));
    this.input.addEventListener('keydown', (e) => this.key(e));
    this.input.addEventListener('input', () => this.suggest(false));
    this.input.addEventListener('blur', () => setTimeout(() => this.hide(), 150));
    this.input.focus();
    this.loadModel();
    await this.loadRecent();
    api.watchOperations(this.id, {
      signal: this.ctx.signal, count: 20,
      onOperations: (ops) => this.merge(ops),
      onError: () => {},
    });
  }

  // --- operations -------------------------------------------------------------

  async loadRecent() {
    try {
      const { operations, page } = await api.recentOperations(this.id, { count: PAGE, signal: this.ctx.signal });
      this.oldestPage = page || 1;
      this.merge(operations);
      this.showMore();
      if (!this.entries.size) this.log.append(h('p', { class: 'meta empty-log' }, this.filter ? `No recent operation of ${this.filter}.` : 'No operations yet. Type a command below.'));
      this.log.scrollTop = this.log.scrollHeight;
    } catch (err) {
      if (err.name !== 'AbortError') this.log.append(errorBox(err));
    }
  }

  showMore() {
    clear(this.more, this.oldestPage > 1
      ? h('button', { type: 'button', class: 'btn btn-small', onClick: () => this.loadEarlier() }, 'Load earlier operations') : null);
  }

  async loadEarlier() {
    // pages of PAGE, in creation order: the one before the oldest shown
    const pageNo = this.oldestPage - 1;
    if (pageNo < 1) return;
    const top = this.log.scrollHeight - this.log.scrollTop;
    const res = await api.list('/devicecontrol/operations', 'operations', { deviceId: this.id, pageSize: PAGE, currentPage: pageNo, signal: this.ctx.signal });
    this.oldestPage = pageNo;
    this.merge(res.items);
    this.showMore();
    this.log.scrollTop = this.log.scrollHeight - top;
  }

  // merge shows new operations in their place (by id, which grows with
  // creation) and updates those shown.
  merge(ops) {
    const atEnd = this.log.scrollHeight - this.log.scrollTop - this.log.clientHeight < 40;
    let added = false;
    for (const op of ops) {
      if (this.filter && !mentions(op.c8y_Command?.text || '', this.filter)) continue;
      const known = this.entries.get(op.id);
      if (known) {
        if (known.op.status !== op.status || known.op.lastUpdated !== op.lastUpdated) this.fill(known, op);
        continue;
      }
      const entry = { el: h('div', { class: 'entry', 'data-op': op.id }), op };
      this.fill(entry, op);
      this.entries.set(op.id, entry);
      const after = [...this.entries.values()].filter((e) => Number(e.op.id) > Number(op.id) && e.el.isConnected).sort((a, b) => Number(a.op.id) - Number(b.op.id))[0];
      if (after) this.log.insertBefore(entry.el, after.el);
      else this.log.append(entry.el);
      added = true;
    }
    if (added) this.log.querySelector('.empty-log')?.remove();
    // a tab left open for days keeps the newest entries only
    if (this.entries.size > MAX_ENTRIES) {
      const old = [...this.entries.values()].sort((a, b) => Number(a.op.id) - Number(b.op.id)).slice(0, this.entries.size - MAX_ENTRIES);
      for (const e of old) {
        e.el.remove();
        this.entries.delete(e.op.id);
      }
    }
    if (added && atEnd) this.log.scrollTop = this.log.scrollHeight;
  }

  fill(entry, op) {
    entry.op = op;
    const text = op.c8y_Command?.text || (op.c8y_Firmware ? `fwupdate ${op.c8y_Firmware.name};${op.c8y_Firmware.version};${op.c8y_Firmware.url}` : '(not a shell command)');
    let out = null;
    if (op.status === 'SUCCESSFUL') out = h('pre', { class: 'out' }, op.c8y_Command?.result || op.lwm2mFirmwareUpdate?.message || 'done');
    else if (op.status === 'FAILED') out = h('pre', { class: 'fail' }, op.failureReason || 'failed');
    else out = h('div', { class: 'meta' }, op.status === 'PENDING' ? `waiting for the device${op.attempts ? ` (sent ${op.attempts} times)` : ''}…` : 'sent, waiting for the answer…');
    clear(entry.el, h('div', {}, h('span', { class: 'cmd' }, text), h('span', { class: 'meta' }, `#${op.id} · ${formatTime(op.creationTime)} `), badge(op.status)), out);
  }

  async submit() {
    const line = this.input.value.trim();
    clear(this.errors);
    this.hide();
    if (!line) return;
    const problem = check(line);
    if (problem) {
      clear(this.errors, errorBox(new Error(problem)));
      return;
    }
    this.remember(line);
    // cleared at once: what the user types while the command is sent
    // stays; a refused command comes back for correction
    this.input.value = '';
    try {
      const op = await api.runCommand(this.id, line, { signal: this.ctx.signal });
      this.merge([op]);
      this.log.scrollTop = this.log.scrollHeight;
      for (const extra of op.additionalOperationIds || []) api.waitForOperation(String(extra), { signal: this.ctx.signal, onUpdate: (o) => this.merge([o]) }).catch(() => {});
      api.waitForOperation(op, { signal: this.ctx.signal, onUpdate: (o) => this.merge([o]) }).catch(() => {});
    } catch (err) {
      if (err.name === 'AbortError') return;
      clear(this.errors, errorBox(err));
      if (!this.input.value) this.input.value = line;
    }
  }

  // --- history ----------------------------------------------------------------

  remember(line) {
    if (this.history[this.history.length - 1] !== line) this.history.push(line);
    while (this.history.length > HISTORY_MAX) this.history.shift();
    sessionStorage.setItem(HISTORY_KEY, JSON.stringify(this.history));
    this.hpos = this.history.length;
    this.draft = '';
  }

  recall(step) {
    if (!this.history.length) return;
    if (this.hpos === this.history.length) this.draft = this.input.value;
    this.hpos = Math.max(0, Math.min(this.history.length, this.hpos + step));
    this.input.value = this.hpos === this.history.length ? this.draft : this.history[this.hpos];
    this.input.setSelectionRange(this.input.value.length, this.input.value.length);
  }

  // --- completion ---------------------------------------------------------------

  // loadModel gathers the paths to complete: the device's objects,
  // instances and resources, with names from the device protocols.
  async loadModel() {
    try {
      const view = await api.get(`/lwm2m/devices/${this.id}/objects`, undefined, { signal: this.ctx.signal });
      const paths = [];
      for (const o of view.objects) {
        paths.push({ path: o.path, name: o.name || '' });
        for (const i of o.instances) {
          paths.push({ path: i.path, name: o.name ? `${o.name} ${i.id}` : '' });
          for (const r of i.resources) {
            paths.push({ path: r.path, name: r.name || '', operations: r.operations || '', raw: r.raw, multiple: r.multiple });
            for (const v of r.values || []) paths.push({ path: `${r.path}/${v.id}`, name: r.name || '' });
          }
        }
      }
      this.model = { paths };
    } catch {
      // completion of paths waits for the next try; commands still complete
      this.model = { paths: [] };
    }
  }

  suggest(fromTab) {
    const res = complete(this.input.value, this.input.selectionStart ?? this.input.value.length, this.model);
    this.span = res;
    this.items = res.items;
    if (fromTab && this.items.length === 1) {
      this.apply(this.items[0]);
      return;
    }
    if (fromTab && this.items.length > 1) {
      const prefix = commonPrefix(this.items);
      const word = this.input.value.slice(res.from, res.to);
      if (prefix.length > word.length) {
        this.apply({ text: prefix });
        return;
      }
    }
    if (!this.items.length || (!fromTab && !this.input.value.slice(res.from, res.to))) {
      this.hide();
      return;
    }
    this.active = -1;
    clear(this.list, this.items.map((it, n) => {
      const li = h('li', { id: `${this.list.id}-${n}`, role: 'option', 'aria-selected': 'false' }, h('span', {}, it.label), h('span', { class: 'muted' }, it.detail));
      li.addEventListener('mousedown', (e) => { e.preventDefault(); this.apply(it); });
      return li;
    }));
    this.list.hidden = false;
    this.input.setAttribute('aria-expanded', 'true');
  }

  apply(item) {
    const v = this.input.value;
    const { from, to } = this.span;
    this.input.value = v.slice(0, from) + item.text + v.slice(to);
    const pos = from + item.text.length;
    this.input.setSelectionRange(pos, pos);
    this.hide();
    this.input.focus();
  }

  hide() {
    this.list.hidden = true;
    this.active = -1;
    this.input.setAttribute('aria-expanded', 'false');
    this.input.removeAttribute('aria-activedescendant');
  }

  move(step) {
    const n = this.items.length;
    if (!n) return;
    this.active = (this.active + step + n) % n;
    for (const [i, li] of [...this.list.children].entries()) li.setAttribute('aria-selected', String(i === this.active));
    const li = this.list.children[this.active];
    this.input.setAttribute('aria-activedescendant', li.id);
    li.scrollIntoView({ block: 'nearest' });
  }

  key(e) {
    const open = !this.list.hidden;
    switch (e.key) {
      case 'Tab':
        if (e.shiftKey) return;
        if (open && this.active >= 0) {
          e.preventDefault();
          this.apply(this.items[this.active]);
        } else if (this.input.value.trim() || open) {
          e.preventDefault();
          this.suggest(true);
        }
        return;
      case 'ArrowDown':
        e.preventDefault();
        if (open) this.move(1);
        else this.recall(1);
        return;
      case 'ArrowUp':
        e.preventDefault();
        if (open) this.move(-1);
        else this.recall(-1);
        return;
      case 'Escape':
        if (open) {
          e.preventDefault();
          this.hide();
        }
        return;
      case 'Enter':
        if (open && this.active >= 0) {
          e.preventDefault();
          this.apply(this.items[this.active]);
        }
        return;
      default:
    }
  }
}

function loadHistory() {
  try {
    const h = JSON.parse(sessionStorage.getItem(HISTORY_KEY) || '[]');
    return Array.isArray(h) ? h.filter((x) => typeof x === 'string').slice(-HISTORY_MAX) : [];
  } catch {
    return [];
  }
}
