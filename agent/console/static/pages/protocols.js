// The device protocols: every object definition the tenant sees (its own,
// inherited from the management tenant, or built in), and the upload of
// DDF files, one or many at once, each file answered on its own.
import { list, request, del, forgetProtocols } from '../api.js';
import { h, clear, table, pager, badge, time, errorBox, spinner, pageHeader, field, card, button, confirm } from '../ui.js';
import { href, setQuery } from '../router.js';

const PAGE_SIZE = 50;

// origin says whose a protocol is, in the words an operator uses.
export function origin(p) {
  if (p.owner === 'core') return badge('BUILT IN', 'neutral');
  if (p.inherited) return badge(`FROM ${String(p.owner).toUpperCase()}`, 'info');
  return badge('OWN', 'ok');
}

export async function render(el, ctx) {
  let page = Math.max(1, Number(ctx.query.page) || 1);
  let ownOnly = ctx.query.own === '1';
  let seq = 0;

  const results = h('div', { 'aria-live': 'polite' });
  const own = field({ label: 'Only this tenant’s own', name: 'own', type: 'checkbox', value: ownOnly });
  own.input.addEventListener('change', () => { ownOnly = own.input.checked; page = 1; load(); });

  el.append(pageHeader('Device protocols'),
    uploadCard(ctx, () => { page = 1; load(); }),
    h('div', { class: 'toolbar' }, own),
    results);

  async function load() {
    const mine = ++seq;
    setQuery({ page: page > 1 ? page : '', own: ownOnly ? '1' : '' });
    if (!results.firstChild) results.append(spinner());
    try {
      const res = await list('/lwm2m/deviceprotocols', 'deviceProtocols', {
        pageSize: PAGE_SIZE, currentPage: page, withTotalPages: true, inherited: ownOnly ? 'false' : undefined, signal: ctx.signal,
      });
      if (mine !== seq) return;
      clear(results, table({
        class: 'protocols',
        empty: ownOnly ? 'This tenant has no protocols of its own: upload DDF files above.' : 'No device protocols.',
        columns: [
          { title: 'Object', class: 'num', render: (p) => h('a', { href: href(`/protocols/${p.objectId}`) }, String(p.objectId)) },
          { title: 'Name', render: (p) => h('a', { href: href(`/protocols/${p.objectId}`), title: p.description || null }, p.name || '') },
          { title: 'Origin', render: origin },
          { title: 'Resources', class: 'num', render: (p) => String((p.resources || []).length) },
          { title: 'Configured', class: 'num', render: (p) => String(configured(p)) },
          { title: 'Source', render: (p) => h('span', { class: 'mono' }, p.source || '') },
          { title: 'Changed', render: (p) => time(p.lastUpdated) },
          {
            title: 'Actions',
            render: (p) => (p.inherited ? '' : button('Delete', async () => {
              const also = p.owner === 'management' ? '' : ' The tenant inherits the object’s definition again, if there is one.';
              if (!await confirm(`Delete ${p.objectId} ${p.name}?`, `The protocol of object ${p.objectId} with its functionalities and validation rules is deleted.${also}`, 'Delete', 'danger')) return;
              await del(`/lwm2m/deviceprotocols/${p.objectId}`, { signal: ctx.signal });
              forgetProtocols();
              await load();
            }, { kind: 'danger btn-small', 'aria-label': `Delete protocol ${p.objectId}` })),
          },
        ],
        rows: res.items,
        rowAttrs: (p) => ({ 'data-object-id': p.objectId }),
      }), pager(res, (n) => { page = n; load(); }, { label: 'Protocol pages' }));
    } catch (err) {
      if (err.name === 'AbortError' || mine !== seq) return;
      clear(results, errorBox(err));
    }
  }
  await load();
}

// configured counts the resources that have functionalities or rules.
function configured(p) {
  return (p.resources || []).filter((r) => (r.functionalities && Object.keys(r.functionalities).length) || r.validation).length;
}

// uploadCard takes DDF files from a file input or dropped on it and
// uploads them one by one, so that each file gets the API's own answer:
// the objects it stored, or the line and element that are wrong.
function uploadCard(ctx, onUploaded) {
  const input = h('input', { type: 'file', id: 'ddf-files', name: 'files', multiple: true, accept: '.xml,application/xml,text/xml', class: 'sr-only' });
  const zone = h('label', { class: 'dropzone' }, input,
    h('strong', {}, 'Drop DDF files here'), h('span', {}, ' or '), h('span', { class: 'btn' }, 'Choose files…'),
    h('small', { class: 'muted' }, 'Object definitions in XML, as in the OMA registry; one or more objects per file.'));
  const lenient = field({ label: 'Lenient', name: 'lenient', type: 'checkbox', hint: 'also accept files that do not follow the schema where the meaning is clear (elements out of order or missing)' });
  const out = h('ul', { class: 'upload-results', 'aria-live': 'polite' });

  async function upload(files) {
    clear(out);
    let stored = 0;
    for (const file of files) {
      const li = h('li', {}, h('span', { class: 'mono' }, file.name), ' ', spinner('uploading…'));
      out.append(li);
      const body = new FormData();
      body.append('file', file, file.name);
      try {
        const res = await request('POST', '/lwm2m/deviceprotocols', { body, query: { lenient: lenient.input.checked ? 'true' : undefined }, signal: ctx.signal });
        const objs = res.deviceProtocols || [];
        stored += objs.length;
        clear(li, h('span', { class: 'mono' }, file.name), ' ', badge('STORED', 'ok'), ' ',
          objs.map((p, i) => [i ? ', ' : '', h('a', { href: href(`/protocols/${p.objectId}`) }, `${p.objectId} ${p.name}`)]));
        li.dataset.result = 'ok';
      } catch (err) {
        if (err.name === 'AbortError') return;
        const where = err.body?.line ? ` (line ${err.body.line}${err.body.element ? `, <${err.body.element}>` : ''})` : '';
        clear(li, h('span', { class: 'mono' }, file.name), ' ', badge('REFUSED', 'bad'), h('div', { class: 'callout error' }, err.message + (err.message.includes('line') ? '' : where)));
        li.dataset.result = 'error';
      }
    }
    forgetProtocols();
    if (stored) onUploaded();
  }

  input.addEventListener('change', () => {
    const files = [...input.files];
    input.value = '';
    if (files.length) upload(files);
  });
  zone.addEventListener('dragover', (ev) => { ev.preventDefault(); zone.classList.add('dragover'); });
  zone.addEventListener('dragleave', () => zone.classList.remove('dragover'));
  zone.addEventListener('drop', (ev) => {
    ev.preventDefault();
    zone.classList.remove('dragover');
    const files = [...(ev.dataTransfer?.files || [])];
    if (files.length) upload(files);
  });
  return card('Upload DDF files', zone, lenient, out);
}
