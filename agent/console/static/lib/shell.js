// The shell grammar (docs/shell.md) as far as the console needs it: the
// commands and their paths for completion, a first check of a line before
// it is sent (the agent checks it fully), and the values in a result.

// kind: which paths a command takes, for completion: ops is the
// operation a resource must allow (R, W, E), depths the path depths.
export const commands = [
  { name: 'read', usage: 'read PATH', help: 'read an object, instance or resource', ops: 'R', depths: [1, 2, 3, 4] },
  { name: 'observe', usage: 'observe PATH', help: 'observe; values become last known values', ops: 'R', depths: [1, 2, 3, 4] },
  { name: 'cancelobservation', usage: 'cancelobservation PATH...', help: 'stop observing', ops: 'R', depths: [1, 2, 3, 4], many: true },
  { name: 'write', usage: 'write PATH VALUE', help: 'write a resource, typed by its definition', ops: 'W', depths: [3, 4] },
  { name: 'execute', usage: 'execute PATH [ARGS]', help: 'execute a resource', ops: 'E', depths: [3] },
  { name: 'create', usage: 'create /O [JSON]', help: 'create an instance', depths: [1] },
  { name: 'delete', usage: 'delete /O/I[/R]', help: 'delete an instance', depths: [2, 3, 4] },
  { name: 'discover', usage: 'discover PATH', help: 'resources and attributes', depths: [1, 2, 3] },
  { name: 'writeattr', usage: 'writeattr PATH pmin=S&pmax=S&gt=N&lt=N&st=N', help: 'write attributes', depths: [1, 2, 3, 4] },
  { name: 'cread', usage: 'cread PATH...', help: 'composite read (LwM2M 1.1)', ops: 'R', depths: [1, 2, 3, 4], many: true },
  { name: 'cobserve', usage: 'cobserve PATH...', help: 'composite observe (LwM2M 1.1)', ops: 'R', depths: [1, 2, 3, 4], many: true },
  { name: 'cwrite', usage: 'cwrite {"PATH": value, ...}', help: 'composite write (LwM2M 1.1)', depths: [] },
  { name: 'writeb', usage: 'writeb PATH HEX|binary:ID', help: 'write bytes', ops: 'W', depths: [3, 4] },
  { name: 'serialization', usage: 'serialization FORMAT', help: 'the device\'s content format', depths: [] },
  { name: 'fwupdate', usage: 'fwupdate NAME;VERSION;URL', help: 'firmware update', depths: [] },
];

export const formats = ['TLV', 'JSON', 'CBOR', 'TEXT', 'OPAQUE', 'SENML_JSON', 'SENML_CBOR', 'DEFAULT'];
const byName = new Map(commands.map((c) => [c.name, c]));

export function command(name) {
  return byName.get(String(name).toLowerCase());
}

const PATH = /^\/(0|[1-9]\d{0,4})(\/(0|[1-9]\d{0,4})){0,3}$/;

function depth(p) {
  return p.split('/').length - 1;
}

// check answers why a line cannot be a command, or null. Only what is
// sure: the command word, and the first path's form and depth.
export function check(line) {
  const words = line.trim().split(/\s+/);
  if (!words[0]) return 'type a command';
  const c = command(words[0]);
  if (!c) return `unknown command "${words[0]}"; the commands: ${commands.map((x) => x.name).join(', ')}`;
  if (!c.depths.length) return null;
  const p = words[1];
  if (!p) return `${c.name} needs a path: ${c.usage}`;
  if (!PATH.test(p) || p.split('/').slice(1).some((n) => Number(n) > 65534)) return `"${p}" is not a path /O/I/R (IDs from 0 to 65534)`;
  if (!c.depths.includes(depth(p))) return `${c.name} takes ${c.usage.split(' ')[1]}, not ${p}`;
  return null;
}

// complete answers what may follow the word under the cursor: {from, to,
// items: [{text, label, detail}]}, from/to the span of the line to
// replace. model.paths: [{path, name, operations, multiple}] of the
// device's objects, instances and resources (from the objects view and
// the protocols).
export function complete(line, cursor, model) {
  const before = line.slice(0, cursor);
  const start = before.search(/\S*$/);
  const word = before.slice(start);
  const end = cursor + (line.slice(cursor).match(/^\S*/)?.[0].length || 0);
  const prior = before.slice(0, start).trim().split(/\s+/).filter(Boolean);
  const span = { from: start, to: end };
  if (!prior.length) {
    const w = word.toLowerCase();
    return { ...span, items: commands.filter((c) => c.name.startsWith(w)).map((c) => ({ text: `${c.name} `, label: c.name, detail: c.help })) };
  }
  const c = command(prior[0]);
  if (!c) return { ...span, items: [] };
  if (c.name === 'serialization' && prior.length === 1) {
    return { ...span, items: formats.filter((f) => f.startsWith(word.toUpperCase())).map((f) => ({ text: f, label: f, detail: '' })) };
  }
  const pathArg = prior.length === 1 || (c.many && prior.slice(1).every((p) => p.startsWith('/')));
  if (!pathArg || !c.depths.length) return { ...span, items: [] };
  if (word && !word.startsWith('/')) return { ...span, items: [] };
  // one level at a time: "/33" offers /3303, "/3303/" its instances
  const d = word ? word.split('/').length - 1 : 1;
  const deepest = Math.max(...c.depths);
  if (d > deepest) return { ...span, items: [] };
  const items = [];
  for (const p of model.paths) {
    if (depth(p.path) !== d || !p.path.startsWith(word || '/')) continue;
    if (d === 3 && c.ops && !p.raw && p.operations !== undefined && !p.operations.includes(c.ops)) continue;
    const deeper = d < deepest && (d < 3 || p.multiple);
    items.push({ text: deeper ? p.path : `${p.path} `, label: p.path, detail: p.name || '' });
  }
  items.sort((a, b) => cmpPath(a.label, b.label));
  return { ...span, items: items.slice(0, 200) };
}

function cmpPath(a, b) {
  const x = a.split('/').slice(1).map(Number);
  const y = b.split('/').slice(1).map(Number);
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    if (x[i] === undefined) return -1;
    if (y[i] === undefined) return 1;
    if (x[i] !== y[i]) return x[i] - y[i];
  }
  return 0;
}

// commonPrefix of the items' texts, for Tab with several choices.
export function commonPrefix(items) {
  if (!items.length) return '';
  let p = items[0].text;
  for (const it of items) {
    while (!it.text.startsWith(p)) p = p.slice(0, -1);
  }
  return p;
}

const RESULT_LINE = /^(\/\d+(?:\/\d+){1,3})(?: \(([^)]*)\))? = (.*)$/;

// resultValues reads the values of a read's result text, one per line
// `PATH (Name) = value`: [{path, name, value}].
export function resultValues(text) {
  const out = [];
  for (const line of String(text || '').split('\n')) {
    const m = RESULT_LINE.exec(line);
    if (m) out.push({ path: m[1], name: m[2] || '', value: m[3] });
  }
  return out;
}

// pathOf is the first path of a command text, '' for none.
export function pathOf(text) {
  const w = String(text || '').trim().split(/\s+/);
  if (w[0] === 'cwrite') {
    const m = /"(\/[\d/]+)"/.exec(text);
    return m ? m[1] : '';
  }
  return w[1] && w[1].startsWith('/') ? w[1] : '';
}
