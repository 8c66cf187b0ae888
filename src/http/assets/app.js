// The overview: counts, camera grid with live tiles, recent alerts and the
// critical banner, kept current by the server-sent events of /api/events.
import { t, language, setLanguage } from './i18n.js';
import './player.js';
import { showPlayback } from './playback.js';
import { api, ensureSession, logout } from './session.js';

const $ = (id) => document.getElementById(id);
const esc = (s) => String(s ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
const fmtTime = (ts) => (ts ? new Date(ts).toLocaleString(language()) : '–');
const stateIcon = { online: '🟢', recovering: '🟡', offline: '🔴' };

let status = null;
const box = { name: '', disk: null, storage: null };
let alerts = [];
window.vms = { updates: [] };

function ago(ts) {
  if (!ts) return '–';
  const s = Math.max(0, Math.round((Date.now() - new Date(ts).getTime()) / 1000));
  if (s < 120) return t('ago.s', { n: s });
  if (s < 7200) return t('ago.m', { n: Math.round(s / 60) });
  return t('ago.h', { n: Math.round(s / 3600) });
}

function incidentOf(cameraId) {
  const a = alerts.find((x) => x.camera_id === cameraId && !x.resolved && x.phase === 'firing');
  return a ? a.message : '';
}

function renderStatus() {
  if (!status) return;
  for (const k of ['online', 'recovering', 'offline']) $(k).textContent = status.cameras.filter((c) => c.state === k).length;
  if (box.name) $('box').textContent = box.name;
  const up = status.mediamtx_up ?? (status.mediamtx && status.mediamtx.up);
  $('mediamtx').textContent = up ? t('mtx.up') : t('mtx.down');
  if (box.disk) {
    const cap = box.storage && box.storage.capacity_days;
    $('disk').textContent = `${Math.round(box.disk.percent)}%`
      + (cap ? ` · ${t('disk.capacity', { n: Math.floor(cap) })}` : '');
    const until = box.storage && box.storage.days_until_full;
    $('disk').title = until == null ? t('disk.neverFull') : t('disk.untilFull', { n: Math.floor(until) });
  }
  const retention = new Map((box.storage ? box.storage.cameras : []).map((r) => [r.camera_id, r]));
  const grid = $('grid');
  const seen = new Set();
  for (const c of status.cameras) {
    seen.add(String(c.id));
    let tile = grid.querySelector(`.tile[data-camera-id="${c.id}"]`);
    if (!tile) {
      tile = document.createElement('article');
      tile.className = 'tile';
      tile.dataset.cameraId = c.id;
      tile.innerHTML = `<vms-player camera-id="${esc(c.id)}"></vms-player><div class="info"></div>`;
      grid.append(tile);
    }
    tile.dataset.state = c.state;
    const inc = incidentOf(c.id);
    tile.querySelector('.info').innerHTML = `<b>${esc(c.name)} <span class="muted">#${esc(c.id)}</span></b>`
      + `<span class="cam-state">${stateIcon[c.state] || ''} ${esc(t(`state.${c.state}`))}</span>`
      + `<span>${c.recording ? t('cam.recording') : t('cam.notRecording')}</span>`
      + `<span title="${esc(fmtTime(c.last_data))}">${t('cam.lastData')}: ${esc(ago(c.last_data))}</span>`
      + retentionLine(retention.get(c.id))
      + (inc ? `<span class="incident">${t('cam.incident')}: ${esc(inc)}</span>` : '');
  }
  for (const tile of grid.querySelectorAll('.tile')) if (!seen.has(tile.dataset.cameraId)) tile.remove();
}

// A camera's footage against its retention; red when it is short, and why.
function retentionLine(r) {
  if (!r) return '';
  const have = Math.floor(r.footage_days);
  const text = t('cam.retention', { have, need: r.required_days });
  if (r.compliant) return `<span class="retention">${esc(text)}</span>`;
  const why = r.reason ? ` (${t(`retention.${r.reason}`)})` : '';
  return `<span class="retention short">${esc(text + why)}</span>`;
}

function renderAlerts() {
  const ul = $('alerts');
  if (!alerts.length) {
    ul.innerHTML = `<li class="muted">${t('alerts.none')}</li>`;
  } else {
    ul.innerHTML = alerts.slice(0, 20).map((a) => `<li data-alert-id="${a.id}">${esc(fmtTime(a.timestamp))} — `
      + `${a.severity === 'critical' ? '🔴' : a.severity === 'warning' ? '🟡' : 'ℹ️'} ${esc(a.camera || '')}: ${esc(a.message)}`
      + (a.resolved ? ` <span class="muted">(${t('alert.resolved')})</span>` : '')
      + (a.acked_by ? ` <span class="muted">(${esc(t('alert.acked', { who: a.acked_by, when: fmtTime(a.acked_at) }))})</span>` : '')
      + '</li>').join('');
  }
  const open = alerts.find((a) => a.severity === 'critical' && !a.resolved && !a.acked_by && a.phase === 'firing');
  const banner = $('banner');
  banner.hidden = !open;
  if (open) {
    banner.dataset.alertId = open.id;
    $('banner-text').textContent = `${t('alert.critical')} — ${open.camera || ''}: ${open.message}`;
  }
  renderStatus();
}

async function loadAlerts() {
  try {
    const r = await fetch('/api/alerts?limit=50');
    if (r.ok) alerts = (await r.json()).alerts || [];
  } catch { /* the event stream reconnects and reloads */ }
  renderAlerts();
}

async function ack() {
  const id = $('banner').dataset.alertId;
  const r = await api(`/api/alerts/${encodeURIComponent(id)}/ack`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{}',
  });
  if (r.ok) await loadAlerts();
}

// EventSource reconnects by itself (after a daemon restart too); each (re)open
// reloads the alerts, which may have changed meanwhile.
function connect() {
  const es = new EventSource('/api/events');
  es.onopen = () => { $('conn').textContent = ''; loadAlerts(); };
  es.onerror = () => { $('conn').textContent = t('conn.lost'); };
  es.addEventListener('status', (e) => {
    status = JSON.parse(e.data);
    if (status.storage !== undefined) box.storage = status.storage;
    window.vms.updates.push({ t: Date.now(), status });
    if (window.vms.updates.length > 50) window.vms.updates.shift();
    renderStatus();
  });
  es.addEventListener('alert', () => loadAlerts());
}

function route() {
  const pb = location.hash.startsWith('#/playback');
  $('overview').hidden = pb;
  $('playback').hidden = !pb;
  // Tiles stop playing while hidden (their observer sees them leave).
  if (pb) showPlayback(status);
}

$('ack').addEventListener('click', ack);
$('logout').addEventListener('click', logout);
$('lang').addEventListener('click', () => {
  setLanguage(language() === 'en' ? 'pt-BR' : 'en');
  $('lang').textContent = language() === 'en' ? 'PT' : 'EN';
  renderAlerts();
});
window.addEventListener('hashchange', route);
setLanguage(language());
$('lang').textContent = language() === 'en' ? 'PT' : 'EN';
async function loadBox() {
  try {
    const s = await (await fetch('/api/status')).json();
    box.name = s.box_name;
    box.disk = s.disk;
    box.storage = s.storage;
    status ??= s;
    renderStatus();
  } catch { /* retried below */ }
}
// Nothing is read before the login.
ensureSession().then(() => {
  loadBox().then(route);
  setInterval(() => { loadBox(); }, 30000);
  setInterval(renderStatus, 10000);
  connect();
});
