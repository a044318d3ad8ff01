// One device protocol: the object's definition, and per resource what its
// values become (functionalities) and which values may be written to it
// (validation rules), each changed in a dialog that sends it to the API
// and shows the API's objections at the fields they name.
import { get, forgetProtocols } from '../api.js';
import { h, clear, table, kvTable, card, button, dialog } from '../ui.js';
import { href } from '../router.js';
import { origin } from './protocols.js';
import { functionalityEditor, describeFunctionalities } from './protocol/functionalities.js';
import { validationEditor, describeValidation } from './protocol/validation.js';

export async function render(el, ctx) {
  const id = ctx.params.id;
  let p = await get(`/lwm2m/deviceprotocols/${encodeURIComponent(id)}`, undefined, { signal: ctx.signal });
  ctx.setTitle(`${p.objectId} ${p.name} · Device protocols`);
  const head = h('div', {});
  const resources = h('div', {});
  el.append(h('p', {}, h('a', { href: href('/protocols') }, '‹ Device protocols')), head, resources);

  function show() {
    clear(head,
      h('div', { class: 'page-head' }, h('h1', {}, `${p.objectId} · ${p.name}`, origin(p))),
      p.description ? h('p', { class: 'subtitle' }, p.description) : null,
      h('details', { class: 'card facts' }, h('summary', {}, 'Definition'), kvTable({
        urn: p.urn, objectVersion: p.objectVersion, lwm2mVersion: p.lwm2mVersion, multipleInstances: p.multipleInstances,
        mandatory: p.mandatory, source: p.source, owner: p.owner, lastUpdated: p.lastUpdated,
      })),
      p.inherited && p.owner !== 'core' ? h('p', { class: 'callout info' },
        `This protocol is inherited from the ${p.owner} tenant: a change gives this tenant its own copy, and the ${p.owner} tenant's stays as it is.`) : null);
    clear(resources, card(`Resources (${p.resources.length})`, table({
      class: 'resources',
      columns: [
        { title: 'ID', class: 'num', render: (r) => String(r.id) },
        { title: 'Name', render: (r) => [h('strong', {}, r.name), r.description ? h('div', { class: 'res-desc' }, r.description) : null] },
        { title: 'Type', render: (r) => [r.type, r.multiple ? h('div', { class: 'muted' }, 'multiple') : null] },
        { title: 'Operations', render: (r) => h('span', { class: 'mono' }, r.operations || '—') },
        { title: 'Unit', render: (r) => r.unit || '' },
        { title: 'Functionalities', render: (r) => describeFunctionalities(r.functionalities) },
        { title: 'Validation', render: (r) => (writable(r) ? describeValidation(r.validation) : h('span', { class: 'muted' }, 'not writable')) },
        {
          title: 'Actions',
          render: (r) => h('div', { class: 'actions' },
            button('Functionalities…', () => edit(r, 'functionalities'), { kind: 'small', 'aria-label': `Functionalities of ${r.id} ${r.name}` }),
            writable(r) ? button('Validation…', () => edit(r, 'validation'), { kind: 'small', 'aria-label': `Validation of ${r.id} ${r.name}` }) : null),
        },
      ],
      rows: p.resources,
      rowAttrs: (r) => ({ 'data-resource-id': r.id }),
    })));
  }

  // edit opens a resource's editor; the API answers the whole protocol,
  // which replaces the one shown.
  async function edit(r, what) {
    const saved = await dialog({
      title: `${what === 'validation' ? 'Validation rules' : 'Functionalities'} of ${p.objectId}/${r.id} ${r.name}`,
      wide: true,
      body: (close) => (what === 'validation' ? validationEditor : functionalityEditor)(p, r, { signal: ctx.signal, onSaved: close }),
    });
    if (saved) {
      p = saved;
      forgetProtocols();
      show();
      const row = resources.querySelector(`tr[data-resource-id="${r.id}"]`);
      row?.classList.add('value-changed');
      // the row is drawn anew: the focus returns to its button that opened the editor
      (row?.querySelector(`button[aria-label^="${what === 'validation' ? 'Validation' : 'Functionalities'} of"]`) || row?.querySelector('button'))?.focus();
    }
  }
  show();
}

// writable: only resources that can be written take rules.
export function writable(r) {
  return (r.operations || '').includes('W');
}
