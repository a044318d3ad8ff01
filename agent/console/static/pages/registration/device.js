// Register one device with a form of the bulk registration file's
// columns: the form becomes a one-line file sent to the same API
// (POST /devicecontrol/bulkNewDeviceRequests), so a device is checked by
// the same rules as in a file, and the agent's reasons for a refused
// line are shown next to the fields they name.
import { request, get } from '../../api.js';
import { h, clear, field, form, card, link } from '../../ui.js';
import { href } from '../../router.js';
import { columns, groups, deviceCSV, reasonsByField } from '../../lib/registration.js';

function input(c) {
  const common = { label: c.label, name: c.name, hint: c.hint, required: c.required, autocomplete: c.autocomplete };
  if (c.values) return field({ ...common, type: 'select', options: c.values.map((v) => (Array.isArray(v) ? v : [v, v || '(not set)'])) });
  if (c.type === 'number') return field({ ...common, type: 'number', min: c.min, max: c.max, step: 1, inputmode: 'numeric' });
  if (c.type === 'checkbox') return field({ ...common, type: 'checkbox', value: c.value });
  return field({ ...common, type: c.type || 'text', spellcheck: 'false', autocapitalize: 'none' });
}

export function render(el, ctx) {
  const fields = new Map(columns.map((c) => [c.name, input(c)]));
  const host = location.hostname.includes(':') ? `[${location.hostname}]` : location.hostname;
  const uris = { NO_SEC: `coap://${host}:5783`, PSK: `coaps://${host}:5784` };
  const uri = fields.get('lwm2m server uri').input;
  const mode = fields.get('securityMode').input;
  uri.value = uris.NO_SEC;
  let uriEdited = false;
  uri.addEventListener('input', () => { uriEdited = true; });
  const showPSK = () => {
    for (const c of columns) if (c.psk) fields.get(c.name).hidden = mode.value !== 'PSK';
    if (!uriEdited) uri.value = uris[mode.value] || uris.NO_SEC;
  };
  mode.addEventListener('change', showPSK);
  showPSK();

  const basic = columns.filter((c) => c.group === 'basic').map((c) => fields.get(c.name));
  const advanced = h('details', { class: 'advanced' },
    h('summary', {}, 'Advanced: connection, bootstrap and firmware update parameters'),
    groups.map((g) => h('fieldset', { class: 'field-group' }, h('legend', {}, g.title),
      columns.filter((c) => c.group === g.id).map((c) => fields.get(c.name)))));
  const result = h('div', { class: 'result-slot', role: 'status' });

  const f = form({
    fields: [h('div', { class: 'field-grid' }, basic), advanced],
    submitLabel: 'Register',
    busyLabel: 'Registering…',
    class: 'registration-form',
    onSubmit: async (values) => {
      clearFieldErrors(f);
      clear(result);
      if (values.securityMode !== 'PSK') {
        for (const c of columns) if (c.psk) values[c.name] = '';
      }
      const answer = await request('POST', '/devicecontrol/bulkNewDeviceRequests', {
        body: deviceCSV(values), contentType: 'text/csv', signal: ctx.signal,
      });
      const failure = (answer.failedCreationList || [])[0];
      if (failure) {
        const byField = reasonsByField(failure.failureReason, [...fields.keys()]);
        let first = null;
        for (const [name, parts] of Object.entries(byField)) {
          if (!name) continue;
          const w = fields.get(name);
          showFieldError(w, parts.join('; '));
          first ||= w;
        }
        if (first) {
          const d = first.closest('details');
          if (d) d.open = true;
        }
        const other = byField[''] || [];
        const err = new Error(other.length ? other.join('; ') : 'The agent refused the device: see the marked fields.');
        err.status = 422;
        first?.input.focus();
        throw err;
      }
      const endpoint = values.ID.trim();
      let device = null;
      try {
        const ext = await get(`/identity/externalIds/c8y_Id/${encodeURIComponent(endpoint)}`, undefined, { signal: ctx.signal });
        device = ext.managedObject?.id;
      } catch (err) {
        if (err.name === 'AbortError') throw err;
      }
      for (const c of columns) if (c.type === 'password') fields.get(c.name).input.value = '';
      clear(result, h('div', { class: 'callout ok' },
        answer.numberOfCreated ? 'Registered ' : 'Updated ', h('strong', { class: 'mono' }, endpoint), '. ',
        device ? link(href(`/devices/${device}`), 'Open the device') : null));
    },
  });
  el.append(card(null,
    h('p', { class: 'muted' }, 'The fields of the bulk registration file (', h('span', { class: 'mono' }, 'docs/registration-file.md'),
      '), for one device; registering an endpoint ID again updates that device, and replaces its parameters as a whole.'),
    result, f));
  fields.get('ID').input.focus();
}

function clearFieldErrors(f) {
  for (const e of f.querySelectorAll('.field-error')) e.remove();
  for (const i of f.querySelectorAll('[aria-invalid="true"]')) {
    i.removeAttribute('aria-invalid');
    i.setAttribute('aria-describedby', (i.getAttribute('aria-describedby') || '').split(' ').filter((x) => !x.endsWith('-err')).join(' '));
  }
}

function showFieldError(wrap, text) {
  const i = wrap.input;
  const msg = h('small', { id: `${i.id}-err`, class: 'field-error' }, text);
  wrap.append(msg);
  i.setAttribute('aria-invalid', 'true');
  i.setAttribute('aria-describedby', [i.getAttribute('aria-describedby'), msg.id].filter(Boolean).join(' '));
}
