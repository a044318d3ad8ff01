// The firmware repository: firmwares (name, description, device type)
// with their versions; a version's package is uploaded here (it becomes
// a binary of the agent) or is an external URL. "Install" on a version
// creates the c8y_Firmware operation for a device chosen in a dialog.
import { post, get } from '../api.js';
import { h, clear, table, pager, time, field, form, card, button, errorBox, spinner, pageHeader, link, toast } from '../ui.js';
import { href, setQuery } from '../router.js';
import { firmwares, versions, addVersion, uploadBinary, installDialog, firmwareText, FIRMWARE } from '../lib/repository.js';

const PAGE_SIZE = 10;

export async function render(el, ctx) {
  let page = Math.max(1, Number(ctx.query.page) || 1);
  const listing = h('div', { 'aria-live': 'polite' });
  const name = field({ label: 'Name', name: 'name', required: true, autocomplete: 'off' });
  const description = field({ label: 'Description', name: 'description', autocomplete: 'off' });
  const type = field({ label: 'Device type', name: 'deviceType', autocomplete: 'off', placeholder: 'c8y_lwm2m', hint: 'The type of the devices it is for (c8y_Filter.type).' });
  const create = form({
    fields: [h('div', { class: 'field-grid' }, name, description, type)],
    submitLabel: 'Add firmware',
    busyLabel: 'Adding…',
    onSubmit: async (v) => {
      const body = { name: v.name.trim(), type: FIRMWARE, description: v.description.trim() || undefined };
      if (v.deviceType.trim()) body.c8y_Filter = { type: v.deviceType.trim() };
      const fw = await post('/inventory/managedObjects', body, { signal: ctx.signal });
      create.reset();
      page = 1;
      await load(fw.id);
    },
  });
  el.append(pageHeader('Firmware'), card('Add a firmware', create), card('Repository', listing));

  async function load(fresh) {
    clear(listing, spinner());
    const res = await firmwares({ pageSize: PAGE_SIZE, currentPage: page, withTotalPages: true, signal: ctx.signal });
    const sections = await Promise.all(res.items.map(async (fw) => firmwareSection(ctx, fw, await versions(fw.id, { signal: ctx.signal }), fw.id === fresh)));
    clear(listing,
      sections.length ? sections : h('p', { class: 'muted' }, 'No firmware yet: add one above.'),
      res.totalPages > 1 || page > 1 ? pager(res, (n) => { page = n; setQuery({ page: n }); load().catch(show); }, { label: 'Firmware pages' }) : null);
  }
  const show = (err) => { if (err.name !== 'AbortError') clear(listing, errorBox(err)); };
  await load().catch(show);
}

// firmwareSection shows one firmware with its versions and the form
// that adds one.
function firmwareSection(ctx, fw, vers, fresh) {
  const rows = h('div', {});
  const draw = () => clear(rows, table({
    class: 'versions',
    caption: `Versions of ${fw.name}`,
    empty: 'No versions yet.',
    columns: [
      { title: 'Version', render: (v) => h('strong', {}, v.c8y_Firmware?.version ?? '') },
      { title: 'Package', render: (v) => packageOf(v.c8y_Firmware?.url) },
      { title: 'Added', render: (v) => time(v.creationTime) },
      {
        title: 'Actions',
        render: (v) => button('Install', async () => {
          const op = await installDialog({ fw, ver: v, signal: ctx.signal });
          if (op) toast(h('span', {}, `Operation ${op.id} installs ${firmwareText(fw, v)}: `, link(href(`/devices/${op.deviceId}/control`), 'follow it')), { kind: 'ok', timeout: 10000 });
        }, { kind: 'small', title: `Install ${firmwareText(fw, v)} on a device` }),
      },
    ],
    rows: vers,
    rowAttrs: (v) => ({ 'data-version-id': v.id }),
  }));
  draw();

  const version = field({ label: 'Version', name: 'version', required: true, autocomplete: 'off' });
  const file = field({ label: 'Package file', name: 'file', type: 'file', hint: 'Uploaded as a binary of the agent, which serves it to the devices.' });
  const url = field({ label: 'or its URL', name: 'url', type: 'url', placeholder: 'https://…, coap://…', hint: 'An external package the devices (or the agent) download.' });
  const add = form({
    fields: [h('div', { class: 'field-grid' }, version, file, url)],
    submitLabel: 'Add version',
    busyLabel: 'Adding…',
    class: 'version-form',
    onSubmit: async (v) => {
      const f = v.file?.[0];
      const external = v.url.trim();
      if (!f && !external) throw new Error('Give the package: a file to upload, or its URL.');
      if (f && external) throw new Error('Give the package once: a file or a URL, not both.');
      let pkg = external;
      if (f) {
        const b = await uploadBinary(f, { signal: ctx.signal });
        pkg = b.self || new URL(`/inventory/binaries/${b.id}`, location.href).href;
      }
      const created = await addVersion(fw, { version: v.version.trim(), url: pkg }, { signal: ctx.signal });
      vers.push(await get(`/inventory/managedObjects/${encodeURIComponent(created.id)}`, undefined, { signal: ctx.signal }).catch(() => created));
      add.reset();
      draw();
    },
  });
  const facts = [fw.description ? h('span', {}, fw.description) : null,
    fw.c8y_Filter?.type ? h('span', {}, 'for devices of type ', h('strong', { class: 'mono' }, fw.c8y_Filter.type)) : null,
    h('span', { class: 'muted' }, `ID ${fw.id}`)].filter(Boolean);
  return h('section', { class: ['firmware', fresh && 'fresh'], 'data-firmware-id': fw.id },
    h('h3', {}, fw.name), h('p', { class: 'device-facts' }, facts), rows,
    h('details', { open: fresh || !vers.length }, h('summary', {}, `Add a version of ${fw.name}`), add));
}

// packageOf shows where a version's package is: a binary of the agent
// by its ID, else the URL.
function packageOf(u) {
  if (!u) return h('span', { class: 'muted' }, '—');
  const m = /^binary:(\d+)$/.exec(u) || /\/inventory\/binaries\/(\d+)$/.exec(u);
  if (m) return h('span', {}, 'binary ', h('a', { href: href('/binaries') }, m[1]));
  return h('span', { class: 'mono wrap' }, u);
}
