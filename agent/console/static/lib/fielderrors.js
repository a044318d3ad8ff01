// The API answers a refused value with one 422 message naming every
// problem ("invalid functionality: measurement.type "a b" is not a
// fragment name (letters, digits, _); alarm.text is empty"). A form shows
// each problem beside the field it names, so that the user sees it where
// they typed; problems that name no field stay for the form as a whole.
import { h } from '../ui.js';

// splitProblems sorts the parts of an API message by the field key each
// names. keys are the form's field names as the API spells them
// ("measurement.type", "groups[0][1].value", "registrationLifetime",
// "/3/0/14"). A part names a key when it starts with it, after the
// context the API puts first ("invalid functionality: "); with anywhere,
// when the key appears in it at all (a path in "validation of /3/0/14
// failed"). The longest key wins, and a key matches only whole ("groups[0]"
// is not named by "groups[0][1].value", nor "/3/0/1" by "/3/0/14"). A
// part that names no key continues the part before it, since the API's
// reasons may hold "; " themselves ("...no decoder "x" is configured; the
// decoders: cbor, frame"). Answers {byKey: Map(key → [text]), rest: [text]}.
export function splitProblems(message, keys, { anywhere = false } = {}) {
  const sorted = [...new Set(keys)].sort((a, b) => b.length - a.length);
  const byKey = new Map();
  const rest = [];
  // one problem per line; within a line, "; " parts
  String(message || '').split('\n').forEach((line, n) => {
    let last = null; // the list the line's previous part went to
    line.split('; ').map((p) => p.trim()).filter(Boolean).forEach((part, i) => {
      let key = keyAt(part, sorted, anywhere);
      let text = part;
      if (!key && n === 0 && i === 0) {
        // "invalid: validation rules: groups[0] is empty": drop the context
        for (let s = part, cut = s.indexOf(': '); cut >= 0 && !key; cut = s.indexOf(': ')) {
          s = s.slice(cut + 2);
          key = keyAt(s, sorted, false);
          if (key) text = s;
        }
      }
      if (key) {
        if (!byKey.has(key)) byKey.set(key, []);
        last = byKey.get(key);
        last.push(text);
      } else if (last && last !== rest) {
        last[last.length - 1] += `; ${part}`;
      } else {
        rest.push(part);
        last = rest;
      }
    });
  });
  return { byKey, rest };
}

// a key ends where a name cannot go on: not a letter, digit, _, ., [ or /
const continues = /[A-Za-z0-9_.[/]/;

function keyAt(text, sorted, anywhere) {
  for (const k of sorted) {
    let at = anywhere ? text.indexOf(k) : (text.startsWith(k) ? 0 : -1);
    while (at >= 0) {
      const whole = (at === 0 || !continues.test(text[at - 1])) && !continues.test(text[at + k.length] || '');
      if (whole) return k;
      at = anywhere ? text.indexOf(k, at + 1) : -1;
    }
  }
  return null;
}

// markField shows messages under a field made by ui.field (or any
// element with .input), tells screen readers the input is invalid and why,
// and answers the message element.
export function markField(wrap, messages) {
  const input = wrap.input || wrap.querySelector('input, select, textarea');
  const id = `${input?.id || 'field'}-error`;
  const box = h('div', { class: 'field-error', id, role: 'alert' }, messages.join('\n'));
  wrap.append(box);
  if (input) {
    input.setAttribute('aria-invalid', 'true');
    const described = (input.getAttribute('aria-describedby') || '').split(' ').filter(Boolean);
    if (!described.includes(id)) input.setAttribute('aria-describedby', [...described, id].join(' '));
  }
  return box;
}

// clearFields removes what markField added inside root.
export function clearFields(root) {
  for (const e of root.querySelectorAll('.field-error')) e.remove();
  for (const input of root.querySelectorAll('[aria-invalid="true"]')) {
    input.removeAttribute('aria-invalid');
    const rest = (input.getAttribute('aria-describedby') || '').split(' ').filter((d) => d && !d.endsWith('-error'));
    if (rest.length) input.setAttribute('aria-describedby', rest.join(' '));
    else input.removeAttribute('aria-describedby');
  }
}

// showProblems places an ApiError's message at the fields of root it
// names (fields: Map or object of key → field wrapper), focuses the first
// of them, and answers an Error for what is left to show for the whole
// form (null when every problem found its field). An error that is not
// a 422 is answered as it is.
export function showProblems(err, fields, root, opts) {
  clearFields(root);
  if (err?.status !== 422) return err;
  const map = fields instanceof Map ? fields : new Map(Object.entries(fields));
  const { byKey, rest } = splitProblems(err.message, [...map.keys()], opts);
  let first = null;
  for (const [key, msgs] of byKey) {
    const wrap = map.get(key);
    markField(wrap, [...new Set(msgs)]);
    first ||= wrap;
  }
  (first?.input || first?.querySelector?.('input, select, textarea'))?.focus();
  if (!byKey.size) return err;
  const n = byKey.size;
  const summary = `${n === 1 ? 'one field' : `${n} fields`} to correct: see the message${n === 1 ? '' : 's'} beside ${n === 1 ? 'it' : 'them'}.`;
  const e = new Error(rest.length ? `${rest.join('; ')} (${summary})` : summary);
  e.status = err.status;
  return e;
}
