// The device's details: what it is, its registration, its fragments and
// external IDs, each as a readable table.
import { get } from '../../api.js';
import { h, kvTable, card, humanize, table } from '../../ui.js';

const GENERAL = ['id', 'name', 'type', 'owner', 'creationTime', 'lastUpdated'];
const SKIP = new Set([...GENERAL, 'self', 'lwm2m', 'c8y_IsDevice', 'childDevices', 'childAssets', 'additionParents', 'assetParents', 'deviceParents']);

export async function render(el, ctx) {
  const d = ctx.device;
  const general = Object.fromEntries(GENERAL.filter((k) => d[k] !== undefined).map((k) => [k, d[k]]));
  const fragments = Object.keys(d).filter((k) => !SKIP.has(k)).sort((a, b) => order(a) - order(b) || a.localeCompare(b));
  const ext = h('div', {}, h('span', { class: 'muted' }, 'Loading…'));
  el.append(h('div', { class: 'cards' },
    card('Device', kvTable(general)),
    d.lwm2m ? card('LwM2M registration', kvTable(d.lwm2m)) : null,
    card('External IDs', ext),
    fragments.map((k) => card(humanize(k), isObject(d[k]) ? kvTable(d[k]) : kvTable({ [k]: d[k] })))));
  try {
    const res = await get(`/identity/globalIds/${d.id}/externalIds`, undefined, { signal: ctx.signal });
    ext.replaceChildren(table({
      columns: [{ title: 'Type', render: (e) => h('code', {}, e.type) }, { title: 'External ID', render: (e) => e.externalId }],
      rows: res.externalIds || [], empty: 'None.',
    }));
  } catch (err) {
    if (err.name !== 'AbortError') ext.replaceChildren(h('span', { class: 'muted' }, err.message));
  }
}

function isObject(v) {
  return v && typeof v === 'object' && !Array.isArray(v);
}

// the fragments an operator looks at first come first
function order(k) {
  return ['c8y_Availability', 'c8y_Connection', 'c8y_Hardware', 'c8y_Firmware', 'c8y_Mobile', 'c8y_Position'].indexOf(k) + 1 || 99;
}
