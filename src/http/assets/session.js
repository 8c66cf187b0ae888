// The dashboard's session: who is logged in, the CSRF token that every
// change sends, and the media token MediaMTX's live view asks for. Without a
// session the login form is shown; the rest of the page waits for it.
import { t } from './i18n.js';

export const session = { user: null, role: null, csrf: '', media: '' };

const $ = (id) => document.getElementById(id);

function keep(me) {
  session.user = me.user;
  session.role = me.role;
  session.csrf = me.csrf_token;
  session.media = me.media_token;
  $('who').textContent = `${me.user} (${me.role})`;
  $('logout').hidden = false;
}

// A request to the API: the session's cookie goes by itself; a change also
// carries the CSRF token. A 401 means the session ended: log in again.
export async function api(url, opts = {}) {
  const method = (opts.method || 'GET').toUpperCase();
  const headers = { ...(opts.headers || {}) };
  if (method !== 'GET' && method !== 'HEAD') headers['X-CSRF-Token'] = session.csrf;
  const r = await fetch(url, { ...opts, headers });
  if (r.status === 401 && session.user) location.reload();
  return r;
}

// The Authorization header MediaMTX reads on WHEP and HLS requests.
export function mediaAuth() {
  return session.media ? { Authorization: `Bearer ${session.media}` } : {};
}

// Resolves once logged in (at once when the cookie's session is alive).
export async function ensureSession() {
  const r = await fetch('/api/me');
  if (r.ok) { keep(await r.json()); return; }
  const form = $('login');
  form.hidden = false;
  document.body.classList.add('logged-out');
  await new Promise((done) => {
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      $('login-error').textContent = '';
      const body = JSON.stringify({ user: $('login-user').value, password: $('login-password').value });
      let res;
      try {
        res = await fetch('/api/login', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body });
      } catch {
        $('login-error').textContent = t('login.unreachable');
        return;
      }
      if (res.ok) {
        keep(await res.json());
        $('login-password').value = '';
        form.hidden = true;
        document.body.classList.remove('logged-out');
        done();
      } else {
        $('login-error').textContent = t(res.status === 429 ? 'login.locked' : 'login.wrong');
      }
    });
  });
}

export async function logout() {
  await api('/api/logout', { method: 'POST' }).catch(() => {});
  location.reload();
}
