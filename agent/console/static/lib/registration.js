// The bulk registration file as the registration page uses it: the
// columns of Cumulocity's template with what an operator needs to fill
// them in, one device's CSV built from a form, and the agent's reasons
// for a refused line split by the column they are about. The form goes
// through the same API and the same checks as a file: there is one set
// of rules, the agent's (docs/registration-file.md).

// columns of the form, in the order shown. name is the CSV column (and
// the form field's name); group "basic" is shown at once, the others in
// the advanced part. values: the allowed ones, for a select ('' = not
// set). Hints repeat the documented rules, so a user sees them before
// the agent refuses a value.
export const columns = [
  { name: 'ID', label: 'Endpoint ID', group: 'basic', required: true, hint: 'The LwM2M endpoint client name; also the device ID (external ID c8y_Id).', autocomplete: 'off' },
  { name: 'NAME', label: 'Name', group: 'basic', hint: 'Shown in the device list; the endpoint ID when empty.' },
  { name: 'CREDENTIALS', label: 'Credentials', group: 'basic', required: true, type: 'password', hint: 'At least 12 characters with upper and lower case, a digit and a special character.', autocomplete: 'new-password' },
  { name: 'securityMode', label: 'Security mode', group: 'basic', required: true, values: [['NO_SEC', 'NO_SEC (plain CoAP)'], ['PSK', 'PSK (DTLS with a pre-shared key)']] },
  { name: 'lwm2m server uri', label: 'LwM2M server URI', group: 'basic', required: true, hint: 'coap://host:port for NO_SEC, coaps://host:port for PSK.' },
  { name: 'lwm2m psk_id', label: 'PSK identity', group: 'basic', psk: true, hint: 'Unique among all devices.', autocomplete: 'off' },
  { name: 'lwm2m psk_key', label: 'PSK key', group: 'basic', psk: true, type: 'password', hint: 'Hexadecimal, an even number of digits. Never shown again.', autocomplete: 'off' },
  { name: 'awakeTimeRegistrationParameter', label: 'Awake time (ms)', group: 'basic', type: 'number', min: 0, hint: 'How long the device listens after each registration or update; 0: always online.' },
  { name: 'SHELL', label: 'Shell commands', group: 'basic', type: 'checkbox', value: true, hint: 'Lists c8y_Command among the supported operations.' },

  { name: 'lwm2mRequestTimeout', label: 'Request timeout (ms)', group: 'connection', type: 'number', min: 1 },
  { name: 'binaryDeliveryEncoding', label: 'Binary delivery encoding', group: 'connection', values: ['', 'OPAQUE', 'TLV', 'JSON', 'TEXT'] },
  { name: 'serverPublicKey', label: 'Server public key', group: 'connection' },
  { name: 'com_cumulocity_model_Agent', label: 'Agent', group: 'connection', type: 'checkbox', hint: 'Adds the com_cumulocity_model_Agent fragment.' },

  { name: 'registrationLifetime', label: 'Registration lifetime (s)', group: 'bootstrap', type: 'number', min: 1 },
  { name: 'bindingMode', label: 'Binding mode', group: 'bootstrap', values: ['', 'U', 'UQ'] },
  { name: 'defaultMinimumPeriod', label: 'Default minimum period (s)', group: 'bootstrap', type: 'number', min: 0 },
  { name: 'defaultMaximumPeriod', label: 'Default maximum period (s)', group: 'bootstrap', type: 'number', min: 0 },
  { name: 'notificationIfDisabled', label: 'Notification storing when disabled', group: 'bootstrap', values: ['', 'true', 'false'] },
  { name: 'disableTimeout', label: 'Disable timeout (s)', group: 'bootstrap', type: 'number', min: 0 },
  { name: 'lwm2mShortServerId', label: 'LwM2M short server ID', group: 'bootstrap', type: 'number', min: 1, max: 65534 },
  { name: 'generateBootstrapServerConfig', label: 'Generate bootstrap server config', group: 'bootstrap', values: ['', 'true', 'false'] },
  { name: 'bootstrapShortServerId', label: 'Bootstrap short server ID', group: 'bootstrap', type: 'number', min: 1, max: 65534 },
  { name: 'securityInstanceOffset', label: 'Security instance offset', group: 'bootstrap', type: 'number', min: 0, max: 65533 },
  { name: 'bootstrap psk_id', label: 'Bootstrap PSK identity', group: 'bootstrap', autocomplete: 'off' },
  { name: 'bootstrap psk_key', label: 'Bootstrap PSK key', group: 'bootstrap', type: 'password', hint: 'Hexadecimal. Never shown again.', autocomplete: 'off' },
  { name: 'external-c8y_Lwm2mPskId', label: 'External ID c8y_Lwm2mPskId', group: 'bootstrap' },
  { name: 'external-c8y_BootstrapPskId', label: 'External ID c8y_BootstrapPskId', group: 'bootstrap' },

  { name: 'fwUpdateDeliveryMethod', label: 'Firmware delivery method', group: 'firmware', values: ['', 'PULL', 'PUSH', 'BOTH'] },
  { name: 'fwUpdateSupportedDeviceProtocol', label: 'Firmware download protocol', group: 'firmware', values: ['', 'COAP', 'COAPS', 'HTTP', 'HTTPS'] },
  { name: 'fwUpdateResetMechanism', label: 'Firmware reset mechanism', group: 'firmware', values: ['', 'PACKAGE', 'PACKAGE_URI'] },
  { name: 'fwUpdateURL', label: 'Firmware URL', group: 'firmware', hint: 'http, https, coap or coaps URL with a host.' },
];

export const groups = [
  { id: 'connection', title: 'Connection' },
  { id: 'bootstrap', title: 'Bootstrap' },
  { id: 'firmware', title: 'Firmware update' },
];

// quote writes one CSV field (RFC 4180): quoted when it holds the
// separator, a quote or a line break, so any value survives.
function quote(v) {
  const s = String(v);
  return /[;"\r\n]/.test(s) || s !== s.trim() ? `"${s.replace(/"/g, '""')}"` : s;
}

// deviceCSV builds the registration file of one device from the form's
// values (by column name): the mandatory columns, then every other one
// that has a value. endpoint id is the ID, as the file format requires.
export function deviceCSV(values) {
  const row = new Map([
    ['ID', values.ID ?? ''],
    ['IDTYPE', 'c8y_Id'],
    ['CREDENTIALS', values.CREDENTIALS ?? ''],
    ['TYPE', 'c8y_lwm2m'],
    ['endpoint id', values.ID ?? ''],
  ]);
  for (const c of columns) {
    if (row.has(c.name)) continue;
    let v = values[c.name];
    if (c.type === 'checkbox') v = v ? 'true' : 'false';
    if (v === undefined || v === null || v === '') continue;
    // white space around a value is dropped by the agent, except in
    // CREDENTIALS, which are taken as written
    row.set(c.name, c.name === 'CREDENTIALS' ? v : String(v).trim());
  }
  if (!values.NAME) row.delete('NAME');
  const names = [...row.keys()];
  return `${names.map(quote).join(';')}\n${names.map((n) => quote(row.get(n))).join(';')}\n`;
}

// Names that reasons use for a column, besides the column itself.
const aliases = [
  ['external ID c8y_Lwm2mPskId', 'external-c8y_Lwm2mPskId'],
  ['external ID c8y_BootstrapPskId', 'external-c8y_BootstrapPskId'],
  ['endpoint id', 'ID'],
];

// reasonsByField splits a failureReason ("CREDENTIALS: must be ...;
// lwm2m psk_key is missing: ...") into its parts and files each under
// the column it names first: {field: [parts]}; parts naming no column of
// the form go under ''. fields are the form's column names.
export function reasonsByField(reason, fields = columns.map((c) => c.name)) {
  const names = [...fields.map((f) => [f, f]), ...aliases.filter(([, f]) => fields.includes(f))];
  const out = {};
  for (const part of String(reason || '').split(/;\s+(?=\S)/).map((p) => p.trim()).filter(Boolean)) {
    let best = null;
    for (const [name, field] of names) {
      const at = wordAt(part, name);
      if (at < 0) continue;
      if (!best || at < best.at || (at === best.at && name.length > best.name.length)) best = { at, name, field };
    }
    const key = best ? best.field : '';
    (out[key] ||= []).push(part);
  }
  return out;
}

// wordAt finds name in text as a whole word (so ID is not found in
// IDTYPE or in "lwm2m psk_id"), -1 if it is not there.
function wordAt(text, name) {
  const word = /[A-Za-z0-9_-]/;
  for (let i = text.indexOf(name); i >= 0; i = text.indexOf(name, i + 1)) {
    const before = text[i - 1];
    const after = text[i + name.length];
    if ((before === undefined || !word.test(before)) && (after === undefined || !word.test(after))) return i;
  }
  return -1;
}

// resultRows are the rows of the results table of a bulk answer: the
// failed lines first (by line), then the accepted ones. lines are the file's
// device lines [{line, endpoint}]; the answer names only failed lines.
export function resultRows(lines, answer) {
  const failed = new Map((answer.failedCreationList || []).map((f) => [f.line, f]));
  const rows = [];
  for (const f of failed.values()) {
    rows.push({ line: f.line, endpoint: f.deviceId || lines.find((l) => l.line === f.line)?.endpoint || '', ok: false, reason: f.failureReason });
  }
  rows.sort((a, b) => a.line - b.line);
  for (const l of lines) {
    if (!failed.has(l.line)) rows.push({ line: l.line, endpoint: l.endpoint, ok: true, reason: '' });
  }
  return rows;
}

// fileLines reads a registration file's device lines as the agent counts
// them: physical lines, the header being line 1, blank lines skipped, a
// quoted field may span lines. endpoint is the ID column's value (the
// first column when there is no ID column). It only labels the results
// table: the agent's answer is what counts.
export function fileLines(text) {
  const records = [];
  let field = '';
  let fields = [];
  let quoted = false;
  let line = 1;
  let start = 1;
  const t = text.replace(/^\uFEFF/, '');
  const sep = count(t.split(/\r?\n/, 1)[0], ';') >= count(t.split(/\r?\n/, 1)[0], ',') ? ';' : ',';
  const end = () => {
    fields.push(field);
    if (fields.length > 1 || fields[0].trim() !== '') records.push({ line: start, fields });
    fields = [];
    field = '';
  };
  for (let i = 0; i < t.length; i++) {
    const c = t[i];
    if (quoted) {
      if (c === '"' && t[i + 1] === '"') { field += '"'; i++; } else if (c === '"') quoted = false;
      else { if (c === '\n') line++; field += c; }
    } else if (c === '"') quoted = true;
    else if (c === sep) { fields.push(field); field = ''; } else if (c === '\n') { end(); line++; start = line; } else if (c !== '\r') field += c;
  }
  if (field !== '' || fields.length) end();
  if (!records.length) return [];
  const norm = (s) => s.toLowerCase().replace(/[\s_-]/g, '');
  const header = records[0].fields.map(norm);
  const idCol = Math.max(0, header.indexOf('id'));
  return records.slice(1).map((r) => ({ line: r.line, endpoint: (r.fields[idCol] || '').trim() }));
}

function count(s, ch) {
  let n = 0;
  let quoted = false;
  for (const c of s || '') {
    if (c === '"') quoted = !quoted;
    else if (c === ch && !quoted) n++;
  }
  return n;
}
