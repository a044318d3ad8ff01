// Audit against a reference device: per instance, how many last known
// values are the same and how many differ, each value of both; the user
// selects differing writable resources and syncs them, which queues one
// write per path with the reference's value (validated like any write),
// and follows those operations to their end.
import { get, post, list, waitForOperation } from '../../api.js';
import { h, clear, table, badge, errorBox, spinner, field, card, button } from '../../ui.js';
import { setQuery, href } from '../../router.js';
import { searchQuery } from '../devices.js';
import { showProblems, clearFields } from '../../lib/fielderrors.js';

function shown(v) {
  if (v === undefined) return h('span', { class: 'muted' }, 'no value');
  if (v === null) return h('span', { class: 'muted' }, 'null');
  return h('span', { class: 'value' }, typeof v === 'object' ? JSON.stringify(v) : String(v));
}

function deviceLabel(d) {
  return `${d.name || `Device ${d.id}`}${d.lwm2m?.endpoint && d.lwm2m.endpoint !== d.name ? ` (${d.lwm2m.endpoint})` : ''} · ID ${d.id}`;
}

// syncable: a value the sync can write, the device's differing one of a
// writable resource that the reference has.
const syncable = (r) => r.writable && !r.same && r.referenceValue !== undefined;

export async function render(el, ctx) {
  const search = field({ label: 'Find the reference device', name: 'refsearch', type: 'search', placeholder: 'name, endpoint or type', autocomplete: 'off' });
  search.classList.add('grow');
  const pick = field({ label: 'Reference device', name: 'reference', type: 'select', options: [['', 'choose a device…']] });
  const out = h('div', { 'aria-live': 'polite' });
  const onlyDiff = field({ label: 'Only differences', name: 'onlyDiff', type: 'checkbox', value: true });
  let reference = ctx.query.reference || '';
  let answer = null;
  let seq = 0;

  el.append(h('form', { class: 'toolbar', role: 'search', onSubmit: (ev) => { ev.preventDefault(); compare(pick.input.value); } },
    search, pick, h('button', { type: 'submit', class: 'btn btn-primary' }, 'Compare'), onlyDiff), out);

  async function findDevices() {
    const mine = ++seq;
    const res = await list('/inventory/managedObjects', 'managedObjects', { query: searchQuery(search.input.value), pageSize: 50, signal: ctx.signal });
    if (mine !== seq) return;
    const cur = pick.input.value || reference;
    const others = res.items.filter((d) => String(d.id) !== String(ctx.id));
    clear(pick.input, h('option', { value: '' }, others.length ? 'choose a device…' : 'no other device matches'),
      others.map((d) => h('option', { value: d.id, selected: String(d.id) === String(cur) }, deviceLabel(d))));
    if (cur && !others.some((d) => String(d.id) === String(cur))) {
      pick.input.append(h('option', { value: cur, selected: true }, `ID ${cur}`));
    }
  }
  let typing;
  search.input.addEventListener('input', () => {
    clearTimeout(typing);
    typing = setTimeout(() => findDevices().catch((err) => err.name !== 'AbortError' && clear(out, errorBox(err))), 300);
  });
  pick.input.addEventListener('change', () => { if (pick.input.value) compare(pick.input.value); });
  onlyDiff.input.addEventListener('change', () => answer && show());

  async function compare(ref) {
    if (!ref) {
      clear(out, errorBox(new Error('Choose the reference device to compare with.')));
      pick.input.focus();
      return;
    }
    reference = ref;
    setQuery({ reference });
    clear(out, spinner('Comparing…'));
    try {
      answer = await get(`/lwm2m/devices/${encodeURIComponent(ctx.id)}/audit`, { reference }, { signal: ctx.signal });
      show();
    } catch (err) {
      if (err.name !== 'AbortError') clear(out, errorBox(err));
    }
  }

  function show() {
    const a = answer;
    const selected = new Set();
    const boxes = new Map(); // path → the cell wrapper (a field for errors)
    const results = h('ul', { class: 'sync-results', 'aria-live': 'polite' });
    const count = h('span', { class: 'count' }, '0');
    const syncBtn = button(['Sync selected ', count], () => sync(), { kind: 'primary', disabled: true });
    const update = () => {
      count.textContent = String(selected.size);
      syncBtn.disabled = selected.size === 0;
    };
    const choose = (path, on) => {
      if (on) selected.add(path);
      else selected.delete(path);
      const box = boxes.get(path);
      if (box) box.input.checked = on;
      update();
    };

    async function sync() {
      clearFields(out);
      clear(results);
      const paths = [...selected];
      let res;
      try {
        res = await post(`/lwm2m/devices/${encodeURIComponent(ctx.id)}/audit/sync`, { reference: a.referenceId, paths }, { signal: ctx.signal });
      } catch (err) {
        throw showProblems(err, boxes, out, { anywhere: true });
      }
      const ops = res.operations || [];
      const waits = ops.map((op) => {
        const st = h('span', {}, badge(op.status));
        const why = h('span', { class: 'muted' });
        results.append(h('li', { 'data-operation-id': op.id }, st, ' ', h('span', { class: 'mono' }, op.c8y_Command?.text || ''), ' ', why));
        return waitForOperation(op, {
          signal: ctx.signal,
          onUpdate: (o) => { clear(st, badge(o.status)); why.textContent = o.failureReason || ''; },
        });
      });
      await Promise.allSettled(waits);
      if (!ctx.signal.aborted) {
        results.append(h('li', {}, button('Compare again', () => compare(a.referenceId), { kind: 'small' })));
      }
    }

    const cards = a.instances.map((inst) => {
      const rows = inst.resources.filter((r) => !onlyDiff.input.checked || !r.same);
      if (!rows.length) return null;
      return h('section', { class: 'card audit-instance', 'data-path': inst.path },
        h('h3', {}, h('span', { class: 'mono' }, inst.path), inst.name || '', badge(`${inst.same} SAME`, 'ok'), badge(`${inst.different} DIFFERENT`, inst.different ? 'warn' : 'neutral')),
        table({
          columns: [
            {
              title: 'Sync',
              render: (r) => {
                if (!syncable(r)) return h('span', { class: 'muted', title: r.same ? 'the same' : !r.writable ? 'not writable' : 'the reference has no value' }, '—');
                const box = field({ label: `Sync ${r.path}`, name: 'sync', type: 'checkbox', value: selected.has(r.path), 'data-path': r.path });
                box.classList.add('sync-box');
                box.querySelector('label').classList.add('sr-only');
                box.input.addEventListener('change', () => choose(r.path, box.input.checked));
                boxes.set(r.path, box);
                return box;
              },
            },
            { title: 'Resource', render: (r) => [h('span', { class: 'mono' }, r.path), ' ', r.name || ''] },
            { title: 'This device', render: (r) => shown(r.value) },
            { title: 'Reference', render: (r) => shown(r.referenceValue) },
            { title: 'Compared', render: (r) => badge(r.same ? 'SAME' : 'DIFFERENT', r.same ? 'ok' : 'warn') },
          ],
          rows,
          rowAttrs: (r) => ({ 'data-path': r.path, class: r.same ? null : 'differs' }),
        }));
    }).filter(Boolean);

    const syncableAll = a.instances.flatMap((i) => i.resources.filter(syncable).map((r) => r.path));
    clear(out,
      h('div', { class: 'card audit-summary' },
        h('span', {}, 'Compared with ', h('a', { href: href(`/devices/${a.referenceId}/details`) }, `device ${a.referenceId}`), ':'),
        badge(`${a.same} SAME`, 'ok'), badge(`${a.different} DIFFERENT`, a.different ? 'warn' : 'neutral'),
        h('span', { class: 'spacer' }),
        h('button', { type: 'button', class: 'btn', disabled: !syncableAll.length, onClick: () => syncableAll.forEach((p) => choose(p, true)) }, `Select all differing writable (${syncableAll.length})`),
        syncBtn),
      results,
      cards.length ? cards : h('p', { class: 'callout info' }, a.instances.length ? 'Every value is the same as the reference’s.' : 'Neither device has last known values to compare yet: read their objects first.'));
  }

  await findDevices();
  if (reference) await compare(reference);
}
