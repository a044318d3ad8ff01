// Log in with tenant, user and password; they are checked against the API
// and kept for this tab only (sessionStorage).
import { login, session } from '../api.js';
import { h, field, form } from '../ui.js';
import { navigate, parse } from '../router.js';
import { home } from '../routes.js';

export function render(el, ctx) {
  const last = session();
  const tenant = field({ label: 'Tenant', name: 'tenant', value: last?.tenant || 'management', required: true, autocomplete: 'organization', autocapitalize: 'none', spellcheck: 'false' });
  const user = field({ label: 'User', name: 'user', value: last?.user || '', required: true, autocomplete: 'username', autocapitalize: 'none', spellcheck: 'false' });
  const password = field({ label: 'Password', name: 'password', type: 'password', required: true, autocomplete: 'current-password' });
  const f = form({
    fields: [tenant, user, password],
    submitLabel: 'Log in',
    busyLabel: 'Logging in…',
    class: 'login-form',
    onSubmit: async (v) => {
      await login(v.tenant, v.user, v.password);
      const next = ctx.query.next && ctx.query.next.startsWith('/') && !ctx.query.next.startsWith('/login') ? parse('#' + ctx.query.next) : null;
      if (next) navigate(next.path, next.query);
      else navigate(home);
    },
  });
  el.append(h('div', { class: 'login' }, h('div', { class: 'card login-card' },
    h('h1', {}, 'Log in'),
    h('p', { class: 'muted' }, 'Your tenant, user name and password, as for the REST API (tenant/user:password).'),
    f)));
  (user.input.value ? password.input : user.input).focus();
}
