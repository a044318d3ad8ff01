// The firmware repository and device groups as the pages use them:
// firmwares (c8y_Firmware) with their versions (child additions of type
// c8y_FirmwareBinary), the c8y_Firmware operation that installs a
// version on a device, uploads of packages as binaries, and the device
// picker of the forms that choose a device.
import { list, get, post, request, del } from '../api.js';
import { h, clear, field, form, dialog, badge } from '../ui.js';
import { searchQuery } from '../pages/devices.js';

export const FIRMWARE = 'c8y_Firmware';
export const VERSION = 'c8y_FirmwareBinary';
export const GROUP = 'c8y_DeviceGroup';

// firmwares answers a page of the tenant's firmwares, by ID.
export function firmwares({ signal, pageSize = 100, currentPage = 1, withTotalPages = false } = {}) {
  return list('/inventory/managedObjects', 'managedObjects', { type: FIRMWARE, pageSize, currentPage, withTotalPages, signal });
}

// versions answers a firmware's versions in the order they were added.
export async function versions(firmwareId, { signal } = {}) {
  const res = await list(`/inventory/managedObjects/${encodeURIComponent(firmwareId)}/childAdditions`, 'references', { pageSize: 100, signal });
  return res.items.map((r) => r.managedObject).filter((mo) => mo && mo.type === VERSION);
}

// groups answers a page of the tenant's device groups.
export function groups({ signal, pageSize = 100, currentPage = 1, withTotalPages = false } = {}) {
  return list('/inventory/managedObjects', 'managedObjects', { fragmentType: 'c8y_IsDeviceGroup', pageSize, currentPage, withTotalPages, signal });
}

// uploadBinary stores a file as a binary of the agent and answers its
// object; the API's refusal (too large, ...) is its ApiError.
export function uploadBinary(file, { signal } = {}) {
  const body = new FormData();
  body.append('object', new Blob([JSON.stringify({ name: file.name, type: file.type || 'application/octet-stream' })], { type: 'application/json' }));
  body.append('file', file, file.name);
  return request('POST', '/inventory/binaries', { body, signal });
}

// addVersion stores a version of firmware fw and makes it fw's child
// addition; a version the reference refuses is removed again, so that
// none is left outside the repository.
export async function addVersion(fw, { version, url }, { signal } = {}) {
  const v = await post('/inventory/managedObjects', { name: fw.name, type: VERSION, c8y_Firmware: { version, url } }, { signal });
  try {
    await post(`/inventory/managedObjects/${encodeURIComponent(fw.id)}/childAdditions`, { managedObject: { id: v.id } }, { signal });
  } catch (err) {
    await del(`/inventory/managedObjects/${encodeURIComponent(v.id)}`).catch(() => {});
    throw err;
  }
  return v;
}

// install creates the c8y_Firmware operation that installs version ver
// of firmware fw on a device, and answers it (PENDING).
export function install(deviceId, fw, ver, { signal } = {}) {
  const f = ver.c8y_Firmware || {};
  return post('/devicecontrol/operations', {
    deviceId: String(deviceId), description: `Install firmware ${fw.name} ${f.version}`,
    c8y_Firmware: { name: fw.name, version: f.version, url: f.url },
  }, { signal });
}

// firmwareText names a version for people: "sensor 2.1.0".
export const firmwareText = (fw, ver) => `${fw.name} ${ver.c8y_Firmware?.version ?? ''}`.trim();

// devicePicker is a search box and a select of the devices it finds
// (50 at most): {el, input (the select), ready}. value is a device to
// choose at first: its name goes into the search box, so that it is
// among those found.
export function devicePicker({ signal, label = 'Device', name = 'deviceId', value = '' } = {}) {
  const search = field({ label: 'Find device', name: `${name}-search`, type: 'search', placeholder: 'name, endpoint or type', autocomplete: 'off' });
  const device = field({ label, name, type: 'select', required: true, options: [['', 'Loading devices…']] });
  let seq = 0;
  async function load(text) {
    const mine = ++seq;
    const res = await list('/inventory/managedObjects', 'managedObjects', { query: searchQuery(text || ''), pageSize: 50, signal });
    if (mine !== seq) return;
    const keep = device.input.value || value;
    const found = res.items;
    clear(device.input, found.length ? found.map((d) => h('option', { value: d.id, selected: d.id === keep },
      `${d.name || `Device ${d.id}`}${d.lwm2m?.endpoint && d.lwm2m.endpoint !== d.name ? ` (${d.lwm2m.endpoint})` : ''} · ID ${d.id}`))
      : h('option', { value: '' }, text ? `No device matches “${text}”` : 'No devices'));
  }
  let typing;
  search.input.addEventListener('input', () => {
    clearTimeout(typing);
    typing = setTimeout(() => load(search.input.value).catch(() => {}), 300);
  });
  const first = value ? get(`/inventory/managedObjects/${encodeURIComponent(value)}`, undefined, { signal })
    .then((d) => { search.input.value = d.name || ''; }).catch(() => {}) : Promise.resolve();
  return { el: [search, device], input: device.input, ready: first.then(() => load(search.input.value)) };
}

// installDialog asks for what is not given (the device; the firmware
// and version) and creates the c8y_Firmware operation; it answers the
// operation, or undefined when the user cancels. The API's refusal
// stays in the dialog, where the user acted.
export function installDialog({ deviceId, fw, ver, signal } = {}) {
  return dialog({
    title: fw && ver ? `Install ${firmwareText(fw, ver)}` : 'Install firmware',
    body: (close) => {
      const parts = [];
      const picker = deviceId ? null : devicePicker({ signal });
      if (picker) parts.push(picker.el);
      const choice = field({ label: 'Firmware version', name: 'version', type: 'select', required: true, options: [['', 'Loading the repository…']] });
      const choices = new Map(); // option value → [fw, ver]
      if (!ver) {
        parts.push(choice);
        (async () => {
          const res = await firmwares({ signal });
          const opts = [];
          for (const f of res.items) {
            for (const v of await versions(f.id, { signal })) {
              choices.set(v.id, [f, v]);
              opts.push(h('option', { value: v.id }, firmwareText(f, v)));
            }
          }
          clear(choice.input, opts.length ? opts : h('option', { value: '' }, 'The repository has no versions yet'));
        })().catch((err) => clear(choice.input, h('option', { value: '' }, `The repository did not load: ${err.message}`)));
      } else {
        parts.push(h('p', {}, 'Version ', badge(ver.c8y_Firmware?.version || '?', 'info'), ' of ', h('strong', {}, fw.name), ' from ',
          h('span', { class: 'mono' }, ver.c8y_Firmware?.url || '')));
      }
      return form({
        fields: parts,
        submitLabel: 'Install',
        busyLabel: 'Creating the operation…',
        extra: [h('button', { type: 'button', class: 'btn', onClick: () => close(undefined) }, 'Cancel')],
        onSubmit: async (v) => {
          const [f, x] = ver ? [fw, ver] : choices.get(v.version) || [];
          if (!f) throw new Error('Choose a firmware version.');
          close(await install(deviceId || v.deviceId, f, x, { signal }));
        },
      });
    },
  });
}
