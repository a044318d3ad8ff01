// Binaries: the tenant's stored files (firmware images and others):
// upload, list, download, delete; and a firmware update of a device,
// from a stored binary's address or any URL, followed to its end.
import { list, del, download, post, waitForOperation } from '../api.js';
import { uploadBinary, devicePicker } from '../lib/repository.js';
import { h, clear, table, pager, time, badge, field, form, card, button, confirm, errorBox, spinner, pageHeader, link } from '../ui.js';
import { href } from '../router.js';
import { formatBytes } from '../lib/bytes.js';

const PAGE_SIZE = 20;

export async function render(el, ctx) {
  let page = Math.max(1, Number(ctx.query.page) || 1);
  const listing = h('div', { 'aria-live': 'polite' });
  const firmware = firmwareForm(ctx);

  const picker = field({ label: 'File', name: 'file', type: 'file', required: true, hint: 'Stored as it is; the agent says how large a binary may be.' });
  const upload = form({
    fields: [picker],
    submitLabel: 'Upload',
    busyLabel: 'Uploading…',
    class: 'inline-form',
    onSubmit: async (v) => {
      const b = await uploadBinary(v.file[0], { signal: ctx.signal });
      picker.input.value = '';
      page = 1;
      await load(b.id);
    },
  });

  el.append(pageHeader('Binaries'),
    card('Upload a binary', upload),
    card('Stored binaries', listing),
    firmware.el);

  async function load(fresh) {
    clear(listing, spinner());
    const res = await list('/inventory/binaries', 'managedObjects', { pageSize: PAGE_SIZE, currentPage: page, withTotalPages: true, signal: ctx.signal });
    firmware.binaries(res.items);
    clear(listing,
      table({
        class: 'binaries',
        empty: 'No binaries yet: upload one above.',
        columns: [
          { title: 'Name', render: (b) => h('span', { class: 'mono' }, b.name) },
          { title: 'Type', render: (b) => b.contentType || b.type || '' },
          { title: 'Size', class: 'num', render: (b) => formatBytes(b.length) },
          { title: 'Uploaded', render: (b) => time(b.creationTime) },
          { title: 'By', render: (b) => b.owner || '' },
          { title: 'ID', class: 'num', render: (b) => b.id },
          {
            title: 'Actions',
            render: (b) => h('div', { class: 'actions' },
              button('Download', () => download(`/inventory/binaries/${encodeURIComponent(b.id)}`, b.name, { signal: ctx.signal }), { kind: 'small' }),
              button('Use for firmware', () => firmware.use(b), { kind: 'small', title: 'Fill the firmware update below with this binary' }),
              button('Delete', async () => {
                if (!(await confirm('Delete binary', `Delete ${b.name}? Devices can no longer download it.`, 'Delete', 'danger'))) return;
                await del(`/inventory/binaries/${encodeURIComponent(b.id)}`, { signal: ctx.signal });
                await load();
              }, { kind: 'small', class: 'btn-danger' })),
          },
        ],
        rows: res.items,
        rowAttrs: (b) => ({ 'data-binary-id': b.id, class: b.id === fresh ? 'fresh' : null }),
      }),
      res.totalPages > 1 || page > 1 ? pager(res, (n) => { page = n; load().catch(show); }, { label: 'Binary pages' }) : null);
  }
  const show = (err) => { if (err.name !== 'AbortError') clear(listing, errorBox(err)); };
  await Promise.all([load().catch(show), firmware.ready]);
}

// firmwareForm creates a c8y_Firmware operation for a chosen device and
// shows its status until it ends. A stored binary's URL is its API
// address: the device downloads the firmware itself (pull), so the
// address must be one it can reach.
function firmwareForm(ctx) {
  const picker = devicePicker({ signal: ctx.signal, value: ctx.query.device });
  const name = field({ label: 'Firmware name', name: 'name', required: true, autocomplete: 'off' });
  const version = field({ label: 'Version', name: 'version', required: true, autocomplete: 'off' });
  const source = field({ label: 'From', name: 'source', type: 'select', options: [['', 'a URL']] });
  const url = field({ label: 'URL', name: 'url', type: 'url', required: true, placeholder: 'https://…, coap://…',
    hint: 'The device downloads the firmware from this address itself (http, https, coap or coaps).' });
  const status = h('div', { class: 'result-slot', role: 'status', 'aria-live': 'polite' });
  let stored = [];

  source.input.addEventListener('change', () => {
    const b = stored.find((x) => x.id === source.input.value);
    if (b) fill(b);
  });
  function fill(b) {
    url.input.value = b.self || new URL(`/inventory/binaries/${b.id}`, location.href).href;
    if (!name.input.value) name.input.value = b.name.replace(/\.[^.]+$/, '');
  }

  const f = form({
    fields: [h('div', { class: 'field-grid' }, picker.el, name, version, source, url)],
    submitLabel: 'Update firmware',
    busyLabel: 'Sending…',
    onSubmit: async (v) => {
      clear(status);
      const op = await post('/devicecontrol/operations', {
        deviceId: v.deviceId, description: `Firmware update to ${v.name} ${v.version}`,
        c8y_Firmware: { name: v.name.trim(), version: v.version.trim(), url: v.url.trim() },
      }, { signal: ctx.signal });
      const line = h('div', { class: 'callout info' });
      clear(status, line);
      const draw = (o) => clear(line, h('strong', {}, `Operation ${o.id}`), ' ', badge(o.status), ' ',
        o.failureReason ? h('span', {}, o.failureReason) : null, o.c8y_Command?.result ? h('span', {}, o.c8y_Command.result) : null, ' ',
        link(href(`/devices/${o.deviceId}/shell`), 'The device’s operations'));
      draw(op);
      // follows the operation after the form is free again: a firmware
      // update waits for the device, which may sleep for hours
      waitForOperation(op, { signal: ctx.signal, onUpdate: draw }).catch((err) => {
        if (err.name !== 'AbortError') line.append(errorBox(err));
      });
    },
  });
  const el = card('Firmware update of a device',
    h('p', { class: 'muted' }, 'Creates the device’s c8y_Firmware operation; the agent writes the URL to the device’s firmware object and follows the update.'),
    f, status);
  return {
    el,
    ready: picker.ready.catch((err) => { if (err.name !== 'AbortError') f.errors.append(errorBox(err)); }),
    binaries(items) {
      stored = items;
      const keep = source.input.value;
      clear(source.input, h('option', { value: '' }, 'a URL'),
        items.map((b) => h('option', { value: b.id, selected: b.id === keep }, `binary ${b.name} (ID ${b.id})`)));
    },
    use(b) {
      source.input.value = b.id;
      fill(b);
      name.input.focus();
      el.scrollIntoView({ block: 'start' });
    },
  };
}
