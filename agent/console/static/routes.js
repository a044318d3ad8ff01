// Every page of the console, one line each: the hash path (":name" is a
// parameter), the module that renders it, and, with nav, its label in the
// main menu (in this order), and navIf(session), when given, whether this
// user's menu has it. public pages need no login.
// Adding a page: docs/console.md.
export const routes = [
  { path: '/login', page: () => import('./pages/login.js'), public: true, title: 'Log in' },
  { path: '/devices', page: () => import('./pages/devices.js'), nav: 'Devices' },
  { path: '/devices/:id', page: () => import('./pages/device.js') },
  { path: '/devices/:id/:tab', page: () => import('./pages/device.js') },
  { path: '/groups', page: () => import('./pages/groups.js'), nav: 'Groups' },
  { path: '/groups/:id', page: () => import('./pages/group.js') },
  { path: '/protocols', page: () => import('./pages/protocols.js'), nav: 'Device protocols' },
  { path: '/protocols/:id', page: () => import('./pages/protocol.js') },
  { path: '/registration', page: () => import('./pages/registration.js'), nav: 'Registration' },
  { path: '/binaries', page: () => import('./pages/binaries.js'), nav: 'Binaries' },
  { path: '/firmware', page: () => import('./pages/firmware.js'), nav: 'Firmware' },
  { path: '/bulkoperations', page: () => import('./pages/bulkoperations.js'), nav: 'Bulk operations' },
  { path: '/plugins', page: () => import('./pages/plugins.js'), nav: 'Plugins' },
  { path: '/tenants', page: () => import('./pages/tenants.js'), nav: 'Tenants', navIf: (s) => s.tenant === 'management' },
];

// The page for "#/" and unknown paths after login.
export const home = '/devices';
