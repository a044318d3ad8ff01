// The device's operations, newest first: status, creation time, what
// was asked (command, firmware update) and what came of it (the device's
// answer or the failure's reason); status changes appear as they happen
// (realtime /operations/{id}). The API has no cancel of an operation, so
// neither has this page.
import { list } from '../../api.js';
import { h, time, badge, field, button, toast } from '../../ui.js';
import { setQuery } from '../../router.js';
import { liveList, newestFirst } from '../../lib/livelist.js';
import { installDialog } from '../../lib/repository.js';

const STATUSES = [['', 'All'], ['PENDING', 'Pending'], ['EXECUTING', 'Executing'], ['SUCCESSFUL', 'Successful'], ['FAILED', 'Failed']];

export async function render(el, ctx) {
  const status = field({ label: 'Status', name: 'status', type: 'select', options: STATUSES, value: ctx.query.status || '' });
  // a version of the firmware repository, as its c8y_Firmware operation
  const install = button('Install firmware', async () => {
    const op = await installDialog({ deviceId: ctx.id, signal: ctx.signal });
    if (op) toast(`Operation ${op.id} installs firmware ${op.c8y_Firmware?.name} ${op.c8y_Firmware?.version}.`, { kind: 'ok' });
  });
  const l = liveList(el, {
    signal: ctx.signal,
    channel: `/operations/${ctx.id}`,
    class: 'operations',
    label: 'Operation pages',
    empty: 'No operations of this device match.',
    toolbar: [status, install],
    accept: (op) => !status.input.value || op.status === status.input.value,
    order: (a, b) => Number(b.id) - Number(a.id),
    load: (p) => newestFirst(list, '/devicecontrol/operations', 'operations', { deviceId: ctx.id, status: status.input.value, ...p }),
    columns: [
      { title: 'Status', render: (op) => badge(op.status) },
      { title: 'Created', class: 'nowrap', render: (op) => time(op.creationTime) },
      { title: 'Operation', render: what },
      { title: 'Result', render: outcome },
      { title: 'Attempts', class: 'num', render: (op) => op.attempts ?? '' },
      { title: 'ID', class: 'num', render: (op) => op.id },
    ],
  });
  status.input.addEventListener('change', () => {
    setQuery({ status: status.input.value });
    l.reload(1);
  });
  await l.ready;
  await l.reload(1);
}

function what(op) {
  if (op.c8y_Command) return h('code', { class: 'command' }, op.c8y_Command.text);
  if (op.c8y_Firmware) return `Firmware update to ${op.c8y_Firmware.name} ${op.c8y_Firmware.version}`;
  return op.description || Object.keys(op).find((k) => k.startsWith('c8y_')) || 'Operation';
}

function outcome(op) {
  if (op.status === 'FAILED') return h('pre', { class: 'op-failure' }, op.failureReason || 'failed');
  const fw = op.lwm2mFirmwareUpdate;
  if (fw) return [fw.step, fw.state, fw.message].filter(Boolean).join(' · ');
  const r = op.c8y_Command?.result;
  return r ? h('pre', { class: 'op-result' }, r) : h('span', { class: 'muted' }, op.status === 'SUCCESSFUL' ? 'done' : '—');
}
