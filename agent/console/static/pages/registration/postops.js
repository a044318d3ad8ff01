// The tenant's post-registration commands: shell commands queued, in
// order, for every device of the tenant after each full registration
// (GET/PUT /lwm2m/postoperations). The agent checks each with the shell's
// grammar and names the bad ones; nothing is stored then.
import { get, put } from '../../api.js';
import { h, clear, field, form, card } from '../../ui.js';

export async function render(el, ctx) {
  const current = await get('/lwm2m/postoperations', undefined, { signal: ctx.signal });
  const text = field({
    label: 'Commands, one a line', name: 'commands', type: 'textarea', rows: 8, spellcheck: 'false', autocapitalize: 'none',
    value: (current.commands || []).join('\n'),
    hint: 'Shell commands (docs/shell.md), e.g. read /3/0 or observe /3303/0/5700. An empty list runs none.',
  });
  text.input.classList.add('mono');
  const saved = h('div', { role: 'status', class: 'result-slot' });
  const f = form({
    fields: [text],
    submitLabel: 'Save',
    busyLabel: 'Saving…',
    onSubmit: async (v) => {
      clear(saved);
      const lines = v.commands.split(/\r?\n/).map((l, i) => ({ text: l.trim(), line: i + 1 })).filter((l) => l.text);
      let res;
      try {
        res = await put('/lwm2m/postoperations', { commands: lines.map((l) => l.text) }, { signal: ctx.signal });
      } catch (err) {
        // the agent counts commands; the user sees lines, blank ones too
        if (err.status === 422) err.message = err.message.replace(/\bcommand (\d+)\b/g, (m, n) => (lines[n - 1] ? `line ${lines[n - 1].line}` : m));
        throw err;
      }
      text.input.value = (res.commands || []).join('\n');
      clear(saved, h('div', { class: 'callout ok' }, res.commands?.length
        ? `Saved: ${res.commands.length} ${res.commands.length === 1 ? 'command runs' : 'commands run'} after each registration.`
        : 'Saved: no command runs after registration.'));
    },
  });
  el.append(card(null,
    h('p', { class: 'muted' }, 'Run on every device of this tenant, in this order, each time it registers (not on its updates); the results are the device’s operations.'),
    saved, f));
}
