// Building blocks of every page: elements, tables, forms, dialogs, toasts,
// tabs, pagers. Text always goes in as text (never as HTML), and styles
// through classes, since the Content-Security-Policy refuses inline ones.

// h makes an element. attrs: class, text, dataset, on<Event> handlers,
// boolean attributes (true sets, false leaves out), any other attribute.
// children: nodes, strings, numbers, arrays of them, null/false skipped.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = Array.isArray(v) ? v.filter(Boolean).join(' ') : v;
    else if (k === 'text') el.textContent = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2).toLowerCase(), v);
    else if (k === 'value' && 'value' in el) el.value = v;
    else if (k === 'checked' || k === 'selected') el[k] = Boolean(v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

// clear empties el and fills it with children.
export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

let idSeq = 0;
export const uid = (prefix = 'id') => `${prefix}-${++idSeq}`;

// --- text of values ---------------------------------------------------

// formatTime shows an ISO time in the user's locale and zone.
export function formatTime(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return d.toLocaleString(undefined, { year: 'numeric', month: 'short', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

// ago says how long ago an ISO time was, in words.
export function ago(iso, now = Date.now()) {
  if (!iso) return '';
  const s = Math.round((now - new Date(iso).getTime()) / 1000);
  if (Number.isNaN(s)) return '';
  if (s < 5) return 'just now';
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

// time is an element showing how long ago, with the exact time as its
// tooltip and machine-readable datetime.
export function time(iso) {
  if (!iso) return h('span', { class: 'muted' }, '—');
  return h('time', { datetime: iso, title: formatTime(iso) }, ago(iso));
}

// humanize turns a fragment or member name into words: c8y_Hardware →
// Hardware, serialNumber → Serial number.
export function humanize(name) {
  const words = String(name).replace(/^c8y_/, '').replace(/_/g, ' ').replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .split(/\s+/).filter(Boolean).map((w, i) => {
      const l = w.toLowerCase();
      if (l === 'lwm2m') return 'LwM2M';
      if (['id', 'uri', 'url', 'psk', 'sms', 'imei', 'imsi', 'iccid', 'mcc', 'mnc', 'lac', 'rssi'].includes(l)) return l.toUpperCase();
      if (i === 0) return w[0].toUpperCase() + w.slice(1);
      return /^[A-Z][a-z]/.test(w) ? l : w;
    });
  return words.length ? words.join(' ') : String(name);
}

// --- small parts ------------------------------------------------------

const badgeKinds = {
  AVAILABLE: 'ok', CONNECTED: 'ok', SUCCESSFUL: 'ok', CLEARED: 'ok',
  UNAVAILABLE: 'bad', DISCONNECTED: 'bad', FAILED: 'bad', CRITICAL: 'bad', MAJOR: 'bad',
  PENDING: 'wait', EXECUTING: 'busy', IN_PROGRESS: 'busy', COMPLETED: 'ok', ACTIVE: 'warn', MINOR: 'warn', WARNING: 'warn', ACKNOWLEDGED: 'info',
};

// badge shows a status word in its colour (and the word itself, so
// colour is never the only sign).
export function badge(text, kind) {
  const t = text || 'UNKNOWN';
  return h('span', { class: ['badge', `badge-${kind || badgeKinds[t] || 'neutral'}`] }, t);
}

export function spinner(label = 'Loading…') {
  return h('span', { class: 'loading', role: 'status' }, h('span', { class: 'spin', 'aria-hidden': 'true' }), label);
}

// errorBox shows an error where the user acted: the API's message, and
// what it was about.
export function errorBox(err) {
  const msg = err?.message || String(err);
  return h('div', { class: 'callout error', role: 'alert' },
    err?.status ? h('strong', {}, statusWords(err.status) + ': ') : null, msg);
}

function statusWords(status) {
  return ({ 400: 'Bad request', 401: 'Not logged in', 403: 'Not allowed', 404: 'Not found', 409: 'Conflict', 413: 'Too large',
    415: 'Wrong type', 422: 'Not accepted', 429: 'Too many attempts', 500: 'Agent error', 503: 'Agent busy' })[status] || `HTTP ${status}`;
}

// button runs an async action on click: disabled while it runs; an error
// is shown beside it (in errorTarget, default: right after the button).
export function button(label, action, { kind = '', class: cls, title, errorTarget, type = 'button', ...attrs } = {}) {
  const b = h('button', { type, class: ['btn', kind && `btn-${kind}`, cls], title, ...attrs }, label);
  if (action) {
    b.addEventListener('click', async (ev) => {
      ev.preventDefault();
      if (b.disabled) return;
      b.disabled = true;
      b.setAttribute('aria-busy', 'true');
      const target = typeof errorTarget === 'function' ? errorTarget() : errorTarget;
      const slot = target || ensureErrorSlot(b);
      clear(slot);
      try {
        await action(ev);
      } catch (err) {
        if (err?.name !== 'AbortError') clear(slot, errorBox(err));
      } finally {
        b.disabled = false;
        b.removeAttribute('aria-busy');
      }
    });
  }
  return b;
}

function ensureErrorSlot(b) {
  let slot = b.nextElementSibling;
  if (!slot || !slot.classList.contains('error-slot')) {
    slot = h('div', { class: 'error-slot' });
    b.after(slot);
  }
  return slot;
}

// link is an anchor to a console route.
export function link(href, ...children) {
  return h('a', { href }, ...children);
}

// --- tables -------------------------------------------------------------

// table renders rows with columns [{title, render(row) → node|text,
// class}], wrapped for horizontal scrolling on narrow screens.
export function table({ columns, rows, empty = 'Nothing to show.', caption, class: cls, rowAttrs }) {
  const head = h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col', class: c.class }, c.title))));
  const body = h('tbody', {});
  if (!rows.length) {
    body.append(h('tr', {}, h('td', { colspan: columns.length, class: 'empty' }, empty)));
  }
  for (const row of rows) {
    body.append(h('tr', rowAttrs ? rowAttrs(row) : {}, columns.map((c) => h('td', { class: c.class, 'data-label': c.title }, c.render(row)))));
  }
  return h('div', { class: ['table-wrap', cls] }, h('table', { class: 'grid' }, caption ? h('caption', {}, caption) : null, head, body));
}

function scalar(v) {
  if (v === null || v === undefined) return h('span', { class: 'muted' }, '—');
  if (typeof v === 'boolean') return v ? 'yes' : 'no';
  if (typeof v === 'string' && /^\d{4}-\d\d-\d\dT\d\d:\d\d/.test(v)) {
    return h('span', {}, formatTime(v), ' ', h('span', { class: 'muted' }, `(${ago(v)})`));
  }
  return String(v);
}

// kvTable shows an object as a readable table: member names in words,
// nested objects as nested tables, lists of plain values joined, lists of
// objects as tables; never raw JSON.
export function kvTable(obj, { depth = 0 } = {}) {
  const rows = Object.entries(obj || {});
  if (!rows.length) return h('span', { class: 'muted' }, 'empty');
  return h('table', { class: ['kv', depth && 'kv-nested'] }, h('tbody', {}, rows.map(([k, v]) =>
    h('tr', {}, h('th', { scope: 'row', title: k }, humanize(k)), h('td', {}, kvValue(v, depth))))));
}

function kvValue(v, depth) {
  if (Array.isArray(v)) {
    if (!v.length) return h('span', { class: 'muted' }, 'none');
    if (v.every((e) => e === null || typeof e !== 'object')) return h('ul', { class: 'chips' }, v.map((e) => h('li', {}, scalar(e))));
    const keys = [...new Set(v.flatMap((e) => (e && typeof e === 'object' ? Object.keys(e) : [])))];
    return table({ columns: keys.map((k) => ({ title: humanize(k), render: (e) => kvValue(e?.[k], depth + 1) })), rows: v });
  }
  if (v && typeof v === 'object') return kvTable(v, { depth: depth + 1 });
  return scalar(v);
}

// --- forms --------------------------------------------------------------

// field makes a labelled input. type: text, password, number, select
// (options: [value] or [[value, label]]), textarea, checkbox, file.
// Answers the wrapper; its .input is the control.
export function field({ label, name, type = 'text', value, hint, options, required, ...attrs }) {
  const id = uid(name || 'f');
  let input;
  if (type === 'select') {
    input = h('select', { id, name, required, ...attrs }, (options || []).map((o) => {
      const [v, l] = Array.isArray(o) ? o : [o, o];
      return h('option', { value: v, selected: String(v) === String(value ?? '') }, l);
    }));
  } else if (type === 'textarea') {
    input = h('textarea', { id, name, required, ...attrs });
    input.value = value ?? '';
  } else {
    input = h('input', { id, name, type, required, ...attrs });
    if (type === 'checkbox') input.checked = Boolean(value);
    else if (value !== undefined && value !== null) input.value = value;
  }
  const hintEl = hint ? h('small', { id: `${id}-hint`, class: 'hint' }, hint) : null;
  if (hintEl) input.setAttribute('aria-describedby', hintEl.id);
  const wrap = type === 'checkbox'
    ? h('div', { class: 'field field-check' }, input, h('label', { for: id }, label), hintEl)
    : h('div', { class: 'field' }, h('label', { for: id }, label, required ? h('span', { class: 'req', 'aria-hidden': 'true' }, ' *') : null), input, hintEl);
  wrap.input = input;
  return wrap;
}

// form wraps fields with a submit button. onSubmit(values, form) may be
// async; while it runs the button is disabled, and what it throws is
// shown in the form (the API's message), focused for screen readers.
export function form({ fields = [], submitLabel = 'Save', onSubmit, extra = [], class: cls, busyLabel }) {
  const errors = h('div', { class: 'form-errors', tabindex: '-1' });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary' }, submitLabel);
  const f = h('form', { class: ['form', cls], novalidate: true }, fields, errors, h('div', { class: 'form-actions' }, submit, extra));
  f.errors = errors;
  f.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (submit.disabled) return;
    clear(errors);
    if (!f.checkValidity()) {
      const bad = f.querySelector(':invalid');
      const label = bad && f.querySelector(`label[for="${bad.id}"]`);
      clear(errors, errorBox(new Error(`${label ? label.textContent.replace(/\s*\*$/, '') : 'A field'}: ${bad?.validationMessage || 'invalid'}`)));
      bad?.focus();
      return;
    }
    const values = {};
    for (const el of f.elements) {
      if (!el.name) continue;
      values[el.name] = el.type === 'checkbox' ? el.checked : el.type === 'file' ? el.files : el.value;
    }
    submit.disabled = true;
    const label = submit.textContent;
    if (busyLabel) submit.textContent = busyLabel;
    try {
      await onSubmit(values, f);
    } catch (err) {
      if (err?.name !== 'AbortError') {
        clear(errors, errorBox(err));
        errors.focus();
      }
    } finally {
      submit.disabled = false;
      submit.textContent = label;
    }
  });
  return f;
}

// --- dialogs and toasts ---------------------------------------------------

// focusable lists the elements inside el that Tab reaches, in order.
export function focusable(el) {
  return [...el.querySelectorAll('a[href], button, input, select, textarea, summary, [tabindex]:not([tabindex="-1"])')]
    .filter((e) => !e.disabled && !e.closest('[hidden], [inert]') && e.getClientRects().length);
}

// dialog opens a modal <dialog> and answers a promise of the value
// close(value) was called with (undefined for Escape or Cancel).
// body(close) makes its content. For keyboard users: the focus moves to
// the dialog's first field (else its first button other than Close),
// Tab and Shift+Tab go round inside it, Escape closes it, and the focus
// returns to what had it before, the control that opened it.
export function dialog({ title, body, wide = false }) {
  return new Promise((resolve) => {
    const opener = document.activeElement;
    const titleId = uid('dlg');
    const d = h('dialog', { class: ['dialog', wide && 'dialog-wide'], 'aria-labelledby': titleId });
    let value;
    const close = (v) => {
      value = v;
      d.close();
    };
    const closeButton = h('button', { type: 'button', class: 'btn btn-icon', 'aria-label': 'Close', onClick: () => close(undefined) }, '×');
    d.append(h('div', { class: 'dialog-head' }, h('h2', { id: titleId }, title), closeButton));
    d.append(h('div', { class: 'dialog-body' }, body(close)));
    d.addEventListener('keydown', (e) => {
      if (e.key !== 'Tab') return;
      const all = focusable(d);
      if (!all.length) return;
      const first = all[0];
      const last = all[all.length - 1];
      if (e.shiftKey && document.activeElement === first) {
        e.preventDefault();
        last.focus();
      } else if (!e.shiftKey && document.activeElement === last) {
        e.preventDefault();
        first.focus();
      }
    });
    d.addEventListener('close', () => {
      d.remove();
      resolve(value);
      // after the opener's own handler has ended: a ui.button is disabled
      // (and cannot take the focus) until then, and a page that redraws
      // the opener focuses its new one itself
      setTimeout(() => {
        const now = document.activeElement;
        if (opener?.isConnected && typeof opener.focus === 'function' && (!now || now === document.body)) opener.focus();
      }, 0);
    });
    document.body.append(d);
    d.showModal();
    const inputs = focusable(d);
    const start = inputs.find((e) => e.matches('input, select, textarea')) || inputs.find((e) => e !== closeButton && e.tagName === 'BUTTON');
    start?.focus();
  });
}

// confirm asks a yes/no question in a dialog.
export function confirm(title, message, okLabel = 'OK', kind = 'primary') {
  return dialog({
    title,
    body: (close) => [h('p', {}, message), h('div', { class: 'form-actions' },
      h('button', { type: 'button', class: `btn btn-${kind}`, onClick: () => close(true) }, okLabel),
      h('button', { type: 'button', class: 'btn', onClick: () => close(false) }, 'Cancel'))],
  }).then(Boolean);
}

// toast shows a short message in the corner for a few seconds.
export function toast(message, { kind = 'info', timeout = 5000 } = {}) {
  const box = document.getElementById('toasts');
  if (!box) return;
  const t = h('div', { class: ['toast', `toast-${kind}`] }, message,
    h('button', { type: 'button', class: 'btn btn-icon', 'aria-label': 'Dismiss', onClick: () => t.remove() }, '×'));
  box.append(t);
  if (timeout) setTimeout(() => t.remove(), timeout);
}

// --- navigation parts ---------------------------------------------------

// tabs renders links as a tab bar: [{id, title, href}], active the id.
// Each tab is a link, so tabs have addresses and the browser's back
// button works.
export function tabs(list, active, label = 'Sections') {
  return h('nav', { class: 'tabs', 'aria-label': label }, h('ul', {}, list.map((t) =>
    h('li', {}, h('a', { href: t.href, class: t.id === active ? 'active' : null, 'aria-current': t.id === active ? 'page' : null }, t.title)))));
}

// pager shows page navigation for a list() answer; onPage(n) loads page n.
export function pager(page, onPage, { label = 'Pages' } = {}) {
  const total = page.totalPages;
  const info = total ? `Page ${page.currentPage} of ${total}` : `Page ${page.currentPage}`;
  const count = page.totalElements !== undefined ? ` · ${page.totalElements} in all` : '';
  return h('nav', { class: 'pager', 'aria-label': label },
    h('button', { type: 'button', class: 'btn', disabled: page.currentPage <= 1, onClick: () => onPage(1), 'aria-label': 'First page' }, '«'),
    h('button', { type: 'button', class: 'btn', disabled: page.currentPage <= 1, onClick: () => onPage(page.currentPage - 1), rel: 'prev' }, '‹ Previous'),
    h('span', { class: 'pager-info', 'aria-live': 'polite' }, info + count),
    h('button', { type: 'button', class: 'btn', disabled: total ? page.currentPage >= total : !page.hasNext, onClick: () => onPage(page.currentPage + 1), rel: 'next' }, 'Next ›'),
    total ? h('button', { type: 'button', class: 'btn', disabled: page.currentPage >= total, onClick: () => onPage(total), 'aria-label': 'Last page' }, '»') : null);
}

// section is a titled card.
export function card(title, ...children) {
  return h('section', { class: 'card' }, title ? h('h2', {}, title) : null, children);
}

// pageHeader is the title of a page, with optional actions on the right.
export function pageHeader(title, ...actions) {
  return h('div', { class: 'page-head' }, h('h1', {}, title), actions.length ? h('div', { class: 'page-actions' }, actions) : null);
}
