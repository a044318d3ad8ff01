// The editor of a resource's functionalities: measurement, alarm (with
// raiseWhen), event, custom action (a predefined one, a decoder or a
// custom action plugin), ignoreEmptyValues and autoObserve. The API
// checks them; its objections show at the fields they name.
import { put } from '../../api.js';
import { h, form, field } from '../../ui.js';
import { showProblems } from '../../lib/fielderrors.js';

// The predefined custom actions (docs/api.md, Functionalities).
const ACTIONS = [
  'device:updateManufacturer', 'device:updateModelNumber', 'device:updateSerialNumber', 'device:updateFirmwareVersion',
  'connectivity:updateCellId', 'connectivity:updateSmnc', 'connectivity:updateSmcc', 'connectivity:updateRssi',
];
const SEVERITIES = ['CRITICAL', 'MAJOR', 'MINOR', 'WARNING'];

// describeFunctionalities lists what a resource's values become, one
// chip each.
export function describeFunctionalities(f) {
  const items = [];
  if (f?.measurement) items.push(`measurement ${f.measurement.type}.${f.measurement.series}${f.measurement.unit ? ` (${f.measurement.unit})` : ''}`);
  if (f?.alarm) items.push(`alarm ${f.alarm.type} ${f.alarm.severity}${f.alarm.raiseWhen ? ` when ${f.alarm.raiseWhen}` : ''}`);
  if (f?.event) items.push(`event ${f.event.type}`);
  if (f?.customAction) items.push(f.customAction);
  if (f?.ignoreEmptyValues) items.push('ignore empty values');
  if (f?.autoObserve) items.push('auto-observe');
  if (!items.length) return h('span', { class: 'muted' }, 'none');
  return h('ul', { class: 'chips' }, items.map((t) => h('li', {}, t)));
}

// section is a fieldset switched on by its checkbox: its fields are sent
// only while it is on.
function section(legend, on, fields) {
  const box = field({ label: legend, name: `${legend.toLowerCase()}-on`, type: 'checkbox', value: on });
  const body = h('div', { class: 'fieldset-body' }, fields);
  body.hidden = !on;
  box.input.addEventListener('change', () => { body.hidden = !box.input.checked; if (box.input.checked) body.querySelector('input, select')?.focus(); });
  const fs = h('fieldset', { class: 'fset' }, h('legend', {}, box), body);
  fs.on = () => box.input.checked;
  return fs;
}

// customActionKind splits a stored customAction into the select's choice
// and the plugin name (with its argument).
function customActionKind(ca) {
  if (!ca) return ['', ''];
  if (ACTIONS.includes(ca)) return [ca, ''];
  const [kind, ...rest] = ca.split(':');
  if (kind === 'decoder' || kind === 'plugin') return [`${kind}:`, rest.join(':')];
  return ['other', ca];
}

// functionalityEditor is the dialog's content; onSaved(protocol) closes it.
export function functionalityEditor(p, r, { signal, onSaved }) {
  const f = r.functionalities || {};
  const m = f.measurement || {};
  const a = f.alarm || {};
  const e = f.event || {};
  const fl = {
    'measurement.type': field({ label: 'Type', name: 'measurement.type', value: m.type ?? '', placeholder: 'c8y_Temperature', hint: 'the measurement fragment and type: letters, digits, _' }),
    'measurement.series': field({ label: 'Series', name: 'measurement.series', value: m.series ?? '', placeholder: 'T' }),
    'measurement.unit': field({ label: 'Unit', name: 'measurement.unit', value: m.unit ?? r.unit ?? '' }),
    'alarm.type': field({ label: 'Type', name: 'alarm.type', value: a.type ?? '', placeholder: 'c8y_HighTemperature' }),
    'alarm.severity': field({ label: 'Severity', name: 'alarm.severity', type: 'select', value: a.severity ?? 'MAJOR', options: SEVERITIES }),
    'alarm.status': field({ label: 'Status of a new alarm', name: 'alarm.status', type: 'select', value: a.status ?? '', options: [['', 'ACTIVE (default)'], 'ACTIVE', 'ACKNOWLEDGED'] }),
    'alarm.text': field({ label: 'Text', name: 'alarm.text', value: a.text ?? '', placeholder: 'Temperature {value}', hint: 'a template: {value}, {path}, {endpoint}, {device}, {time}' }),
    'alarm.raiseWhen': field({ label: 'Raise when', name: 'alarm.raiseWhen', value: a.raiseWhen ?? '', placeholder: 'value > 40', hint: 'raised while it holds, cleared when it stops; empty: every value raises the alarm' }),
    'event.type': field({ label: 'Type', name: 'event.type', value: e.type ?? '', placeholder: 'c8y_DoorEvent' }),
    'event.text': field({ label: 'Text', name: 'event.text', value: e.text ?? '', placeholder: 'Door is {value}' }),
  };
  const [kind, plugin] = customActionKind(f.customAction);
  const caKind = field({
    label: 'Custom action', name: 'customActionKind', type: 'select', value: kind,
    options: [['', 'none'], ...ACTIONS, ['decoder:', 'a decoder plugin (decoder:NAME)'], ['plugin:', 'a custom action plugin (plugin:NAME)'], ...(kind === 'other' ? [['other', f.customAction]] : [])],
  });
  const caName = field({ label: 'Plugin', name: 'customActionName', value: plugin, placeholder: 'frame or frame:argument', hint: 'the name declared in the agent’s plugins file, with :argument (decoder) or :action (plugin) when it takes one' });
  const ca = h('div', { class: 'field-group' }, caKind, caName);
  ca.input = caKind.input;
  const showName = () => { caName.hidden = !caKind.input.value.endsWith(':'); };
  caKind.input.addEventListener('change', showName);
  showName();
  const ignore = field({ label: 'Ignore empty values', name: 'ignoreEmptyValues', type: 'checkbox', value: f.ignoreEmptyValues, hint: 'an empty value is not mapped' });
  const observe = field({ label: 'Observe automatically', name: 'autoObserve', type: 'checkbox', value: f.autoObserve, hint: 'observe this resource on every device of the tenant (needs one of the above)' });

  const meas = section('Measurement', Boolean(f.measurement), [fl['measurement.type'], fl['measurement.series'], fl['measurement.unit']]);
  const alarm = section('Alarm', Boolean(f.alarm), [fl['alarm.type'], fl['alarm.severity'], fl['alarm.status'], fl['alarm.text'], fl['alarm.raiseWhen']]);
  const event = section('Event', Boolean(f.event), [fl['event.type'], fl['event.text']]);
  const fields = { ...fl, customAction: ca, ignoreEmptyValues: ignore, autoObserve: observe };

  const v = (k) => fl[k].input.value.trim();
  const fm = form({
    class: 'functionalities-form',
    fields: [meas, alarm, event, ca, ignore, observe],
    submitLabel: 'Save functionalities',
    busyLabel: 'Saving…',
    extra: [h('button', { type: 'button', class: 'btn', onClick: () => onSaved(undefined) }, 'Cancel')],
    onSubmit: async (_, formEl) => {
      const body = {};
      if (meas.on()) body.measurement = { type: v('measurement.type'), series: v('measurement.series'), ...(v('measurement.unit') ? { unit: v('measurement.unit') } : {}) };
      if (alarm.on()) {
        body.alarm = { type: v('alarm.type'), severity: v('alarm.severity'), text: fl['alarm.text'].input.value };
        if (v('alarm.status')) body.alarm.status = v('alarm.status');
        if (v('alarm.raiseWhen')) body.alarm.raiseWhen = v('alarm.raiseWhen');
      }
      if (event.on()) body.event = { type: v('event.type'), text: fl['event.text'].input.value };
      const k = caKind.input.value;
      if (k === 'other') body.customAction = f.customAction;
      else if (k.endsWith(':')) body.customAction = k + caName.input.value.trim();
      else if (k) body.customAction = k;
      if (ignore.input.checked) body.ignoreEmptyValues = true;
      if (observe.input.checked) body.autoObserve = true;
      try {
        onSaved(await put(`/lwm2m/deviceprotocols/${p.objectId}/resources/${r.id}/functionalities`, body, { signal }));
      } catch (err) {
        throw showProblems(err, fields, formEl);
      }
    },
  });
  return [h('p', { class: 'muted' }, `What each value of ${r.name} (${r.type}${r.unit ? `, ${r.unit}` : ''}) becomes. Nothing checked: its values are kept as last known values only.`), fm];
}
