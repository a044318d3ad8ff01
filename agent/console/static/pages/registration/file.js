// Register many devices from a bulk registration file (CSV): chosen or
// dropped, sent as the multipart field "file" to
// POST /devicecontrol/bulkNewDeviceRequests, and the answer shown as a
// summary and a table of every line, failed lines first, each with the
// agent's reason.
import { request } from '../../api.js';
import { h, clear, badge, table, pager, field, card, button } from '../../ui.js';
import { fileLines, resultRows } from '../../lib/registration.js';
import { formatBytes } from '../../lib/bytes.js';

// Rows shown at once: a file may hold 100,000 lines.
const PAGE = 100;

export function render(el, ctx) {
  let file = null;
  const picker = field({ label: 'Registration file (CSV)', name: 'file', type: 'file', accept: '.csv,text/csv,text/plain',
    hint: 'Fields separated by “;” or “,”, with the header line of the bulk registration template; at most 64 MiB.' });
  const chosen = h('p', { class: 'muted', 'aria-live': 'polite' }, 'No file chosen.');
  const zone = h('div', { class: 'dropzone' }, h('p', {}, 'Drop a CSV file here, or choose one:'), picker, chosen);
  const results = h('div', { class: 'bulk-results' });
  const upload = button('Upload and register', () => send(), { kind: 'primary', disabled: true });

  const choose = (f) => {
    file = f || null;
    upload.disabled = !file;
    clear(chosen, file ? [h('strong', {}, file.name), ` · ${formatBytes(file.size)}`] : 'No file chosen.');
    clear(results);
  };
  picker.input.addEventListener('change', () => choose(picker.input.files[0]));
  zone.addEventListener('dragover', (e) => { e.preventDefault(); zone.classList.add('dragging'); });
  zone.addEventListener('dragleave', () => zone.classList.remove('dragging'));
  zone.addEventListener('drop', (e) => {
    e.preventDefault();
    zone.classList.remove('dragging');
    if (e.dataTransfer?.files?.length) choose(e.dataTransfer.files[0]);
  });

  async function send() {
    clear(results);
    const body = new FormData();
    body.append('file', file, file.name);
    const [answer, text] = await Promise.all([
      request('POST', '/devicecontrol/bulkNewDeviceRequests', { body, signal: ctx.signal }),
      file.text().catch(() => ''),
    ]);
    show(answer, fileLines(text));
  }

  function show(answer, lines) {
    const rows = resultRows(lines, answer);
    const updated = (answer.numberOfSuccessful || 0) - (answer.numberOfCreated || 0);
    const filter = field({ label: 'Show', name: 'show', type: 'select', value: answer.numberOfFailed ? 'failed' : 'all',
      options: [['all', 'All lines'], ['failed', 'Failed lines'], ['ok', 'Registered lines']] });
    const list = h('div', {});
    let page = 1;
    const draw = () => {
      const want = filter.input.value;
      const shown = rows.filter((r) => want === 'all' || (want === 'failed' ? !r.ok : r.ok));
      const totalPages = Math.max(1, Math.ceil(shown.length / PAGE));
      page = Math.min(page, totalPages);
      clear(list, table({
        class: 'bulk-lines',
        caption: `${shown.length} ${shown.length === 1 ? 'line' : 'lines'}`,
        empty: want === 'failed' ? 'No line failed.' : 'No lines.',
        columns: [
          { title: 'Line', class: 'num', render: (r) => r.line },
          { title: 'Endpoint', render: (r) => h('span', { class: 'mono' }, r.endpoint) },
          { title: 'Status', render: (r) => badge(r.ok ? 'REGISTERED' : 'FAILED', r.ok ? 'ok' : 'bad') },
          { title: 'Reason', render: (r) => r.reason },
        ],
        rows: shown.slice((page - 1) * PAGE, page * PAGE),
        rowAttrs: (r) => ({ 'data-line': r.line, class: r.ok ? null : 'failed' }),
      }), totalPages > 1 ? pager({ currentPage: page, totalPages, totalElements: shown.length, hasNext: page < totalPages },
        (n) => { page = n; draw(); }, { label: 'Result pages' }) : null);
    };
    filter.input.addEventListener('change', () => { page = 1; draw(); });
    clear(results,
      h('div', { class: ['callout', answer.numberOfFailed ? 'error' : 'ok'], role: 'status' },
        h('strong', {}, `${answer.numberOfSuccessful || 0} of ${answer.numberOfAll || 0} lines registered`),
        ` (${answer.numberOfCreated || 0} created, ${updated} updated), ${answer.numberOfFailed || 0} failed.`),
      h('dl', { class: 'summary' },
        stat('Lines', answer.numberOfAll), stat('Created', answer.numberOfCreated), stat('Updated', updated), stat('Failed', answer.numberOfFailed)),
      h('div', { class: 'toolbar' }, filter), list);
    draw();
  }

  el.append(card(null,
    h('p', { class: 'muted' }, 'Every line registers or updates one device; good lines are stored even when others fail, and a failed line stores nothing.'),
    zone, h('div', { class: 'form-actions' }, upload)), results);
  // a file dropped outside the zone would replace the console with it
  for (const ev of ['dragover', 'drop']) {
    const stop = (e) => { if (!zone.contains(e.target)) e.preventDefault(); };
    window.addEventListener(ev, stop);
    ctx.signal.addEventListener('abort', () => window.removeEventListener(ev, stop), { once: true });
  }
}

function stat(label, n) {
  return h('div', {}, h('dt', {}, label), h('dd', {}, String(n || 0)));
}
