// Resource values as the shell's write command takes them, and the
// validation rules of device protocols, checked in the browser before a
// write is sent, with the words the API uses when it refuses one
// (docs/device-protocols.md, docs/shell.md). The agent checks again;
// this only spares the user a round trip.

// typeHint says what a write of a resource type takes.
export const typeHint = {
  STRING: 'text',
  INTEGER: 'a whole number',
  UNSIGNED_INTEGER: 'a whole number, 0 or more',
  FLOAT: 'a number, e.g. 21.5 or 1e3',
  BOOLEAN: 'true or false',
  TIME: 'RFC 3339 (2024-05-01T12:00:00Z) or Unix seconds',
  OBJLNK: 'an object link O:I, e.g. 3:0',
  OPAQUE: 'bytes as hex, e.g. 00ff10',
  CORELNK: 'CoRE links, e.g. </3/0>',
};

const INT = /^[+-]?\d+$/;
const FLOATRE = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

// parseValue checks text written for a resource type. Answers
// {value, text} (value typed: number, boolean, Date, string) or {error}.
export function parseValue(type, text) {
  const t = String(text);
  switch (type) {
    case 'INTEGER':
    case 'UNSIGNED_INTEGER': {
      if (!INT.test(t)) return { error: `"${t}" is not an integer` };
      const n = BigInt(t);
      if (type === 'UNSIGNED_INTEGER' && n < 0n) return { error: `"${t}" is not an unsigned integer` };
      const max = type === 'UNSIGNED_INTEGER' ? (1n << 64n) - 1n : (1n << 63n) - 1n;
      const min = type === 'UNSIGNED_INTEGER' ? 0n : -(1n << 63n);
      if (n > max || n < min) return { error: `"${t}" is out of range` };
      return { value: Number(t), text: t };
    }
    case 'FLOAT':
      if (!FLOATRE.test(t) || !Number.isFinite(Number(t))) return { error: `"${t}" is not a number` };
      return { value: Number(t), text: t };
    case 'BOOLEAN': {
      const b = { 1: true, true: true, 0: false, false: false }[t.toLowerCase()];
      if (b === undefined) return { error: `"${t}" is not a boolean (1, 0, true, false)` };
      return { value: b, text: t };
    }
    case 'TIME': {
      const d = parseTime(t);
      if (!d) return { error: `"${t}" is not a time (Unix seconds or RFC 3339)` };
      return { value: d, text: t };
    }
    case 'OBJLNK':
      if (!/^\d{1,5}:\d{1,5}$/.test(t) || t.split(':').some((p) => Number(p) > 65535)) return { error: `"${t}" is not an object link (O:I)` };
      return { value: t, text: t };
    case 'OPAQUE':
      if (!/^([0-9a-fA-F]{2})*$/.test(t)) return { error: `"${t}" is not hex (an even number of digits 0-9, a-f)` };
      return { value: t.toLowerCase(), text: t };
    case 'NONE':
      return { error: 'this resource holds no value' };
    default:
      return { value: t, text: t };
  }
}

function parseTime(t) {
  if (INT.test(t)) return new Date(Number(t) * 1000);
  if (!/^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:\d\d)$/i.test(t)) return null;
  const d = new Date(t);
  return Number.isNaN(d.getTime()) ? null : d;
}

// operand reads a value (typed, or as the objects view answers it) the
// ways the rules compare: its text, a number, an instant, a link.
function operand(v) {
  if (v === undefined || v === null) return { known: false };
  const o = { known: true };
  if (v instanceof Date) {
    o.text = String(Math.floor(v.getTime() / 1000));
    o.num = v.getTime() / 1000;
    o.date = v;
  } else if (typeof v === 'boolean') {
    o.text = v ? '1' : '0';
    o.num = v ? 1 : 0;
  } else if (typeof v === 'number') {
    o.text = String(v);
    o.num = v;
    o.date = new Date(v * 1000);
  } else {
    const s = String(v);
    o.text = s;
    const trimmed = s.trim();
    if (FLOATRE.test(trimmed)) o.num = Number(trimmed);
    else if (/^0x[0-9a-f]+$/i.test(trimmed)) o.num = parseInt(trimmed, 16);
    const d = parseTime(trimmed);
    if (d) o.date = d;
    if (o.num !== undefined && !o.date) o.date = new Date(o.num * 1000);
    if (o.date && o.num === undefined) o.num = o.date.getTime() / 1000;
  }
  const link = /^(\d{1,5}):(\d{1,5})$/.exec(o.text || '');
  if (link) o.link = `${Number(link[1])}:${Number(link[2])}`;
  return o;
}

// describe names a rule as the API's messages do.
export function describe(r) {
  let v;
  if (r.resource !== undefined && r.value === undefined) v = `resource ${r.resource}`;
  else if (typeof r.value === 'string') v = JSON.stringify(r.value);
  else v = String(r.value);
  return `${r.type} ${r.rule} ${v}`;
}

const compare = {
  EQUALS: (a, b) => a === b,
  EQUALS_NOT: (a, b) => a !== b,
  GREATER_THAN: (a, b) => a > b,
  LOWER_THAN: (a, b) => a < b,
  GREATER_OR_EQUALS: (a, b) => a >= b,
  LOWER_OR_EQUALS: (a, b) => a <= b,
};

const viewName = { NUMBER: 'a number', DATE: 'a date', OBJECTLINK: 'an object link' };

function view(type, o) {
  switch (type) {
    case 'NUMBER': return o.num;
    case 'DATE': return o.date ? o.date.getTime() : undefined;
    case 'OBJECTLINK': return o.link;
    default: return o.text;
  }
}

// checkRule answers "" when the rule holds, else why not (" (...)" or
// "" plus false): [holds, reason].
function checkRule(r, v, lookup) {
  const mine = operand(v);
  let other;
  if (r.resource !== undefined && r.value === undefined) {
    other = operand(lookup ? lookup(r.resource) : undefined);
    if (!other.known) return [false, ` (no last known value of ${r.resource})`];
  } else {
    other = operand(r.value);
  }
  if (r.type === 'REGEX') {
    let re;
    try {
      re = new RegExp(`^(?:${r.value})$`, 'u');
    } catch {
      return [true, '']; // a pattern of Go's syntax the browser cannot read: the agent decides
    }
    const m = re.test(mine.text);
    return [r.rule === 'EQUALS_NOT' ? !m : m, ''];
  }
  const a = view(r.type, mine);
  if (a === undefined) return [false, ` (${JSON.stringify(mine.text)} is not ${viewName[r.type]})`];
  const b = view(r.type, other);
  if (b === undefined) return [false, r.resource ? ` (the last known value of ${r.resource} is not ${viewName[r.type]})` : ''];
  const f = compare[r.rule];
  return [f ? f(a, b) : true, ''];
}

// checkRules checks a value against a resource's validation groups: valid
// when every rule of at least one group holds. Answers null, or the API's
// message: `validation of /3/0/14 failed: group 1: STRING EQUALS_NOT
// "test"`. lookup(path) answers another resource's last known value.
export function checkRules(path, value, validation, lookup) {
  const groups = validation?.groups || [];
  if (!groups.length) return null;
  const failures = [];
  for (const [i, group] of groups.entries()) {
    const failed = [];
    for (const r of group) {
      const [ok, reason] = checkRule(r, value, lookup);
      if (!ok) failed.push(describe(r) + reason);
    }
    if (!failed.length) return null;
    failures.push(`group ${i + 1}: ${failed.join(', ')}`);
  }
  return `validation of ${path} failed: ${failures.join('; ')}`;
}

// rulesText says in words which values the rules allow.
export function rulesText(validation) {
  const groups = validation?.groups || [];
  if (!groups.length) return '';
  return groups.map((g) => g.map(describe).join(' and ')).map((s) => (groups.length > 1 ? `(${s})` : s)).join(' or ');
}

// formatValue shows a value of the objects view as text.
export function formatValue(v) {
  if (v === undefined || v === null) return '';
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  return String(v);
}

// writeText is the shell text of a write: the value as typed, or a
// cwrite when the write command cannot carry it (empty, surrounding
// spaces, several lines).
export function writeCommand(path, text, type) {
  if (text === '' || text !== text.trim() || /[\r\n]/.test(text)) {
    return `cwrite ${JSON.stringify({ [path]: type === 'STRING' || !type ? text : text.trim() })}`;
  }
  return `write ${path} ${text}`;
}
