// The device's alarms: severity, status, count, times and text, filtered
// by status and severity, each open one acknowledged or cleared with a
// button (PUT /alarm/alarms/{id}); raised, counted and changed alarms
// appear as they happen (realtime /alarms/{id}).
import { list, put } from '../../api.js';
import { h, time, badge, button, field } from '../../ui.js';
import { setQuery } from '../../router.js';
import { liveList } from '../../lib/livelist.js';

const STATUSES = [['ACTIVE,ACKNOWLEDGED', 'Open (active or acknowledged)'], ['ACTIVE', 'Active'], ['ACKNOWLEDGED', 'Acknowledged'], ['CLEARED', 'Cleared'], ['all', 'All']];
const SEVERITIES = [['', 'All'], ['CRITICAL', 'Critical'], ['MAJOR', 'Major'], ['MINOR', 'Minor'], ['WARNING', 'Warning']];

export async function render(el, ctx) {
  const status = field({ label: 'Status', name: 'status', type: 'select', options: STATUSES, value: ctx.query.status ?? STATUSES[0][0] });
  const severity = field({ label: 'Severity', name: 'severity', type: 'select', options: SEVERITIES, value: ctx.query.severity || '' });
  const filters = () => ({ status: status.input.value === 'all' ? '' : status.input.value, severity: severity.input.value });
  const accept = (a) => {
    const f = filters();
    return (!f.status || f.status.split(',').includes(a.status)) && (!f.severity || f.severity === a.severity);
  };
  const change = async (a, to) => {
    const done = await put(`/alarm/alarms/${a.id}`, { status: to }, { signal: ctx.signal });
    l.upsert(done || { ...a, status: to });
  };
  const l = liveList(el, {
    signal: ctx.signal,
    channel: `/alarms/${ctx.id}`,
    class: 'alarms',
    label: 'Alarm pages',
    empty: 'No alarms of this device match.',
    toolbar: [status, severity],
    accept,
    order: (a, b) => Date.parse(b.time) - Date.parse(a.time) || Number(b.id) - Number(a.id),
    load: (p) => list('/alarm/alarms', 'alarms', { source: ctx.id, ...filters(), ...p, withTotalPages: true }),
    columns: [
      { title: 'Severity', render: (a) => badge(a.severity) },
      { title: 'Status', render: (a) => badge(a.status) },
      { title: 'Count', class: 'num', render: (a) => a.count ?? 1 },
      { title: 'Last', class: 'nowrap', render: (a) => time(a.time) },
      { title: 'First', class: 'nowrap', render: (a) => time(a.firstOccurrenceTime || a.creationTime) },
      { title: 'Type', render: (a) => h('span', { class: 'mono' }, a.type) },
      { title: 'Text', render: (a) => a.text || '' },
      {
        title: 'Actions', render: (a) => h('div', { class: 'actions' },
          a.status === 'ACTIVE' ? button('Acknowledge', () => change(a, 'ACKNOWLEDGED'), { kind: 'small' }) : null,
          a.status !== 'CLEARED' ? button('Clear', () => change(a, 'CLEARED'), { kind: 'small' }) : null),
      },
    ],
  });
  const refilter = () => {
    const f = filters();
    setQuery({ status: status.input.value === STATUSES[0][0] ? '' : status.input.value, severity: f.severity });
    l.reload(1);
  };
  status.input.addEventListener('change', refilter);
  severity.input.addEventListener('change', refilter);
  await l.ready;
  await l.reload(1);
}
