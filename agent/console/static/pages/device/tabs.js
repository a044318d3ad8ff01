// The tabs of the device page, one line each, in the order shown: id (the
// last part of the address, #/devices/{id}/{tab}), title, and the module
// whose render(el, ctx) fills the tab. Adding a tab: docs/console.md.
export const tabs = [
  { id: 'details', title: 'Details', load: () => import('./details.js') },
  { id: 'objects', title: 'Objects', load: () => import('./objects.js') },
  { id: 'shell', title: 'Shell', load: () => import('./shell.js') },
  { id: 'measurements', title: 'Measurements', load: () => import('./measurements.js') },
  { id: 'events', title: 'Events', load: () => import('./events.js') },
  { id: 'alarms', title: 'Alarms', load: () => import('./alarms.js') },
  { id: 'control', title: 'Control', load: () => import('./control.js') },
  { id: 'bootstrap', title: 'Bootstrap', load: () => import('./bootstrap.js') },
  { id: 'audit', title: 'Audit', load: () => import('./audit.js') },
];
