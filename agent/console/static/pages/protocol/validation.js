// The editor of a writable resource's validation rules: groups of rules
// in disjunctive normal form, a value being valid when every rule of at
// least one group holds. Groups and rules are added and removed here; the
// API checks them, and its objections ("groups[0][1].value ...") show at
// the rule and field they name.
import { put } from '../../api.js';
import { h, clear, form, field } from '../../ui.js';
import { showProblems } from '../../lib/fielderrors.js';

const SIX = ['EQUALS', 'EQUALS_NOT', 'GREATER_THAN', 'LOWER_THAN', 'GREATER_OR_EQUALS', 'LOWER_OR_EQUALS'];
// RULES: the rules each type takes (docs/api.md, Validation rules).
const RULES = { STRING: ['EQUALS', 'EQUALS_NOT'], NUMBER: SIX, DATE: SIX, OBJECTLINK: ['EQUALS', 'EQUALS_NOT'], REGEX: ['EQUALS', 'EQUALS_NOT'] };
const RULE_WORDS = {
  EQUALS: 'equals', EQUALS_NOT: 'does not equal', GREATER_THAN: 'is greater than', LOWER_THAN: 'is lower than',
  GREATER_OR_EQUALS: 'is at least', LOWER_OR_EQUALS: 'is at most',
};
const REGEX_WORDS = { EQUALS: 'matches', EQUALS_NOT: 'does not match' };

function ruleText(rule) {
  const words = (rule.type === 'REGEX' ? REGEX_WORDS : RULE_WORDS)[rule.rule] || rule.rule;
  const quoted = rule.type === 'STRING' || rule.type === 'REGEX';
  const what = rule.resource ? `the value of ${rule.resource}` : quoted ? JSON.stringify(rule.value) : String(rule.value);
  return `${rule.type === 'REGEX' ? 'text' : rule.type.toLowerCase()} ${words} ${what}`;
}

// describeValidation says the rules in words: "a or (b and c)".
export function describeValidation(v) {
  const groups = v?.groups || [];
  if (!groups.length) return h('span', { class: 'muted' }, 'any value');
  return h('ul', { class: 'rule-groups' }, groups.map((g, i) => h('li', {}, i ? h('span', { class: 'or' }, 'or ') : null, g.map(ruleText).join(' and '))));
}

// validationEditor is the dialog's content; onSaved(protocol) closes it.
export function validationEditor(p, r, { signal, onSaved }) {
  const groupsEl = h('div', { class: 'rule-editor' });
  const groups = []; // [{el, rules: [{el, type, rule, compare, value}]}]

  function ruleRow(group, init = {}) {
    const type = field({ label: 'Type', name: 'type', type: 'select', value: init.type || 'STRING', options: Object.keys(RULES) });
    const rule = field({ label: 'Rule', name: 'rule', type: 'select', options: [] });
    const compare = field({ label: 'Compare with', name: 'compare', type: 'select', value: init.resource ? 'resource' : 'value', options: [['value', 'a constant'], ['resource', 'another resource']] });
    const value = field({ label: 'Value', name: 'value', value: init.resource ?? (init.value !== undefined ? String(init.value) : '') });
    const fillRules = () => {
      const words = type.input.value === 'REGEX' ? REGEX_WORDS : RULE_WORDS;
      const cur = rule.input.value || init.rule;
      clear(rule.input, RULES[type.input.value].map((x) => h('option', { value: x, selected: x === cur }, `${words[x]} (${x})`)));
      compare.hidden = type.input.value === 'REGEX';
      if (compare.hidden) compare.input.value = 'value';
      labelValue();
    };
    const labelValue = () => {
      const hints = { STRING: 'text', NUMBER: 'a number', DATE: '2024-05-01T12:00:00Z or Unix seconds', OBJECTLINK: 'objectId:instanceId', REGEX: 'a pattern the whole value must match' };
      value.querySelector('label').textContent = compare.input.value === 'resource' ? 'Resource path' : 'Value';
      value.input.placeholder = compare.input.value === 'resource' ? '/3/0/15' : hints[type.input.value];
    };
    type.input.addEventListener('change', fillRules);
    compare.input.addEventListener('change', labelValue);
    const entry = { type, rule, compare, value };
    const remove = h('button', { type: 'button', class: 'btn btn-small btn-danger', 'aria-label': 'Remove this rule', onClick: () => {
      group.rules.splice(group.rules.indexOf(entry), 1);
      entry.el.remove();
      renumber();
    } }, 'Remove rule');
    entry.el = h('div', { class: 'rule-row' }, type, rule, compare, value, remove);
    fillRules();
    return entry;
  }

  function addGroup(init = []) {
    const group = { rules: [] };
    const list = h('div', { class: 'rule-list' });
    const addRule = (x) => {
      const row = ruleRow(group, x);
      group.rules.push(row);
      list.append(row.el);
      return row;
    };
    const title = h('legend', {});
    group.title = title;
    group.el = h('fieldset', { class: 'fset rule-group' }, title, list, h('div', { class: 'actions' },
      h('button', { type: 'button', class: 'btn btn-small', onClick: () => { addRule().type.input.focus(); renumber(); } }, 'Add rule (and)'),
      h('button', { type: 'button', class: 'btn btn-small btn-danger', onClick: () => {
        groups.splice(groups.indexOf(group), 1);
        group.el.remove();
        renumber();
      } }, 'Remove group')));
    (init.length ? init : [{}]).forEach(addRule);
    groups.push(group);
    groupsEl.append(group.el);
    renumber();
    return group;
  }

  // renumber titles groups as the API counts them in its messages
  // (group 1 is groups[0]) and tells when there are none.
  function renumber() {
    groups.forEach((g, i) => {
      g.title.textContent = `${i ? 'or ' : ''}Group ${i + 1}: every rule holds`;
    });
    empty.hidden = groups.length > 0;
  }

  const empty = h('p', { class: 'callout info' }, 'No rules: any value may be written. Add a group to restrict the values.');
  groupsEl.append(empty);
  for (const g of r.validation?.groups || []) addGroup(g);
  renumber();

  const fm = form({
    class: 'validation-form',
    fields: [groupsEl, h('div', { class: 'actions' }, h('button', { type: 'button', class: 'btn', onClick: () => addGroup().rules[0].type.input.focus() }, 'Add group (or)'))],
    submitLabel: 'Save rules',
    busyLabel: 'Saving…',
    extra: [h('button', { type: 'button', class: 'btn', onClick: () => onSaved(undefined) }, 'Cancel')],
    onSubmit: async (_, formEl) => {
      const fields = new Map();
      const body = {
        groups: groups.map((g, gi) => {
          fields.set(`groups[${gi}]`, g.el);
          return g.rules.map((x, ri) => {
            const at = `groups[${gi}][${ri}]`;
            fields.set(at, x.el);
            fields.set(`${at}.type`, x.type);
            fields.set(`${at}.rule`, x.rule);
            fields.set(`${at}.value`, x.value);
            fields.set(`${at}.resource`, x.value);
            const rule = { type: x.type.input.value, rule: x.rule.input.value };
            if (x.compare.input.value === 'resource') rule.resource = x.value.input.value.trim();
            else rule.value = x.value.input.value;
            return rule;
          });
        }),
      };
      try {
        onSaved(await put(`/lwm2m/deviceprotocols/${p.objectId}/resources/${r.id}/validation`, body, { signal }));
      } catch (err) {
        throw showProblems(err, fields, formEl);
      }
    },
  });
  return [h('p', { class: 'muted' }, `A value written to ${r.name} (${r.type}) is accepted when every rule of at least one group holds. Writes from the shell, the Objects tab and audit sync are checked before they are queued.`), fm];
}
