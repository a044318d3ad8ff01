// The device's registration and bootstrap parameters: the registration
// file's columns, read and changed through /lwm2m/devices/{id}/bootstrap.
// Only what the user changed is sent (an emptied field removes the
// parameter); the agent checks the result whole, as for a file line, and
// its reasons show at the fields they name. PSK keys are write-only: the
// API never answers them, and the page has only a field for a new one.
import { get, put } from '../../api.js';
import { h, clear, form, field, card } from '../../ui.js';
import { showProblems } from '../../lib/fielderrors.js';

// PARAMS: every parameter (docs/api.md, Bootstrap parameters) by group:
// [name, label, kind, options]. kind: text, int, bool, choice, key.
const PARAMS = [
  ['LwM2M server', [
    ['endpointId', 'Endpoint', 'fixed'],
    ['lwm2mServerUri', 'Server URI', 'text', 'coap://host:5783 or coaps://host:5784'],
    ['lwm2mShortServerId', 'Short server ID', 'int'],
    ['bindingMode', 'Binding mode', 'choice', ['U', 'UQ']],
    ['registrationLifetime', 'Registration lifetime (s)', 'int'],
    ['defaultMinimumPeriod', 'Default minimum period (s)', 'int'],
    ['defaultMaximumPeriod', 'Default maximum period (s)', 'int'],
    ['notificationIfDisabled', 'Notification storing when disabled', 'bool'],
    ['disableTimeout', 'Disable timeout (s)', 'int'],
  ]],
  ['Requests', [
    ['awakeTimeRegistrationParameter', 'Awake time (ms)', 'int', '0: always online'],
    ['lwm2mRequestTimeout', 'Request timeout (ms)', 'int'],
    ['binaryDeliveryEncoding', 'Binary delivery encoding', 'choice', ['OPAQUE', 'TLV', 'JSON', 'TEXT']],
  ]],
  ['Security', [
    ['securityMode', 'Security mode', 'choice', ['NO_SEC', 'PSK']],
    ['lwm2mPskId', 'LwM2M PSK identity', 'text'],
    ['lwm2mPskKey', 'New LwM2M PSK key', 'key'],
    ['serverPublicKey', 'Server public key', 'text'],
  ]],
  ['Bootstrap', [
    ['generateBootstrapServerConfig', 'Generate bootstrap server config', 'bool'],
    ['securityInstanceOffset', 'Security instance offset', 'int'],
    ['bootstrapShortServerId', 'Bootstrap short server ID', 'int'],
    ['bootstrapPskId', 'Bootstrap PSK identity', 'text'],
    ['bootstrapPskKey', 'New bootstrap PSK key', 'key'],
  ]],
  ['Firmware update', [
    ['fwUpdateDeliveryMethod', 'Delivery method', 'choice', ['PULL', 'PUSH', 'BOTH']],
    ['fwUpdateSupportedDeviceProtocol', 'Device protocol', 'choice', ['COAP', 'COAPS', 'HTTP', 'HTTPS']],
    ['fwUpdateResetMechanism', 'Reset mechanism', 'choice', ['PACKAGE', 'PACKAGE_URI']],
    ['fwUpdateURL', 'Package URL', 'text', 'http(s):// or coap(s):// URL'],
  ]],
];

// text is a parameter's value as its field shows it.
function text(v) {
  return v === undefined || v === null ? '' : String(v);
}

function paramField([name, label, kind, extra], value) {
  const common = { label, name, 'data-param': name };
  switch (kind) {
    case 'fixed':
      return field({ ...common, value: text(value), readonly: true, hint: 'the device’s identity; it cannot change' });
    case 'int':
      return field({ ...common, value: text(value), inputmode: 'numeric', autocomplete: 'off', hint: extra });
    case 'bool':
      return field({ ...common, type: 'select', value: text(value), options: [['', 'not set'], ['true', 'yes'], ['false', 'no']] });
    case 'choice': {
      const cur = text(value);
      const opts = [['', 'not set'], ...extra];
      if (cur && !extra.includes(cur)) opts.push(cur);
      return field({ ...common, type: 'select', value: cur, options: opts });
    }
    case 'key':
      return field({ ...common, type: 'password', value: '', autocomplete: 'new-password', placeholder: 'unchanged', hint: 'hex; write-only: never shown. Empty keeps the current key.' });
    default:
      return field({ ...common, value: text(value), autocomplete: 'off', placeholder: extra });
  }
}

// changes answers the members to send: what differs from the values
// read, null for a parameter emptied, booleans as booleans; a key only
// when one was typed.
export function changes(defs, read, current) {
  const body = {};
  for (const [name, , kind] of defs) {
    if (kind === 'fixed') continue;
    const now = current[name] ?? '';
    if (kind === 'key') {
      if (now !== '') body[name] = now.trim();
      continue;
    }
    if (now === text(read[name])) continue;
    if (now === '') body[name] = null;
    else if (kind === 'bool') body[name] = now === 'true';
    else body[name] = kind === 'int' ? now.trim() : now;
  }
  return body;
}

export async function render(el, ctx) {
  const path = `/lwm2m/devices/${encodeURIComponent(ctx.id)}/bootstrap`;
  let read = await get(path, undefined, { signal: ctx.signal });
  const defs = PARAMS.flatMap(([, ps]) => ps);
  const status = h('div', { 'aria-live': 'polite' });
  const holder = h('div', {});
  el.append(h('p', { class: 'muted' },
    'The parameters of the device’s registration file line. The agent checks the whole set as it checks a file line and stores it only if it passes. ',
    'A change of the security mode, the LwM2M PSK identity or key ends the device’s registration: it registers again under the new settings.'),
  status, holder);

  function show() {
    const fields = {};
    const groups = PARAMS.map(([title, ps]) => h('fieldset', { class: 'fset' }, h('legend', {}, title), ps.map((d) => (fields[d[0]] = paramField(d, read[d[0]])))));
    const fm = form({
      class: 'bootstrap-form',
      fields: [h('div', { class: 'param-groups' }, groups)],
      submitLabel: 'Save parameters',
      busyLabel: 'Saving…',
      extra: [h('button', { type: 'reset', class: 'btn', onClick: (ev) => { ev.preventDefault(); clear(status); show(); } }, 'Undo changes')],
      onSubmit: async (_, formEl) => {
        clear(status);
        const current = Object.fromEntries(Object.entries(fields).map(([k, f]) => [k, f.input.value]));
        const body = changes(defs, read, current);
        const names = Object.keys(body);
        if (!names.length) {
          status.append(h('p', { class: 'callout info' }, 'Nothing to save: no parameter was changed.'));
          return;
        }
        try {
          read = await put(path, body, { signal: ctx.signal });
        } catch (err) {
          throw showProblems(err, fields, formEl);
        }
        show();
        status.append(h('p', { class: 'callout ok', role: 'status' }, `Saved: ${names.join(', ')}.`));
      },
    });
    clear(holder, card(null, fm));
  }
  show();
}
