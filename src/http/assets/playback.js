// The playback view: one camera, one day; a timeline of recorded spans
// (MediaMTX's /list through the daemon), click or keys to play from a
// moment (a new /get with a new start), 1x/2x/4x, previous/next gap; and
// for admins, the evidence export of a range (MP4 files, manifest,
// SHA256SUMS) with its hashes and downloads.
import { t } from './i18n.js';
import { api, session } from './session.js';

const $ = (id) => document.getElementById(id);
const DAY = 86400;
let spans = [];
let dayStart = 0; // ms, local midnight
let playingFrom = null; // ms of the moment the current /get starts at
let rate = 1;
let wired = false;

const pad = (n) => String(n).padStart(2, '0');
const hhmmss = (ms) => { const d = new Date(ms); return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`; };

function camera() { return $('pb-camera').value; }

async function load() {
  const [y, m, d] = $('pb-day').value.split('-').map(Number);
  dayStart = new Date(y, m - 1, d).getTime();
  const start = new Date(dayStart).toISOString();
  const end = new Date(dayStart + DAY * 1000).toISOString();
  spans = [];
  try {
    const r = await fetch(`/api/cameras/${camera()}/playback/list?start=${encodeURIComponent(start)}&end=${encodeURIComponent(end)}`);
    if (r.ok) {
      spans = (await r.json()).map((s) => {
        const a = new Date(s.start).getTime();
        return { start: a, end: a + s.duration * 1000 };
      });
    }
  } catch { /* shown as no recordings */ }
  draw();
}

function draw() {
  const tl = $('timeline');
  tl.innerHTML = '';
  for (const s of spans) {
    const el = document.createElement('div');
    el.className = 'span';
    el.style.left = `${((s.start - dayStart) / (DAY * 10))}%`;
    el.style.width = `${Math.max(0.1, (s.end - s.start) / (DAY * 10))}%`;
    el.dataset.start = new Date(s.start).toISOString();
    el.dataset.end = new Date(s.end).toISOString();
    tl.append(el);
  }
  const cur = document.createElement('div');
  cur.className = 'cursor';
  tl.append(cur);
  tl.dataset.spans = spans.length;
  $('pb-pos').textContent = spans.length ? '' : t('pb.none');
  moveCursor();
}

function position() {
  const v = $('pb-video');
  return playingFrom === null ? null : playingFrom + v.currentTime * 1000;
}

function moveCursor() {
  const at = position();
  const cur = document.querySelector('#timeline .cursor');
  if (!cur || at === null) return;
  cur.style.left = `${(at - dayStart) / (DAY * 10)}%`;
  $('timeline').setAttribute('aria-valuenow', Math.round((at - dayStart) / 1000));
  $('pb-pos').textContent = hhmmss(at);
}

// Plays from `ms` (within a span; else from the next span's start).
export function playAt(ms) {
  let s = spans.find((x) => ms >= x.start && ms < x.end);
  if (!s) { s = spans.find((x) => x.start > ms); if (!s) return; ms = s.start; }
  const duration = Math.max(1, Math.min((s.end - ms) / 1000, 3600));
  playingFrom = ms;
  const v = $('pb-video');
  v.src = `/api/cameras/${camera()}/playback/get?start=${encodeURIComponent(new Date(ms).toISOString())}&duration=${duration.toFixed(3)}`;
  v.dataset.start = new Date(ms).toISOString();
  v.playbackRate = rate;
  v.play().catch(() => {});
}

function gap(dir) {
  const at = position() ?? dayStart;
  if (dir > 0) {
    // The next gap's end: the next span starting after now.
    const s = spans.find((x) => x.start > at + 1000);
    if (s) playAt(s.start);
  } else {
    const before = spans.filter((x) => x.end < at - 1000);
    if (before.length) playAt(Math.max(before[before.length - 1].start, before[before.length - 1].end - 10000));
  }
}

function wire() {
  wired = true;
  $('pb-camera').addEventListener('change', load);
  $('pb-day').addEventListener('change', load);
  $('timeline').addEventListener('click', (e) => {
    const r = e.currentTarget.getBoundingClientRect();
    playAt(dayStart + ((e.clientX - r.left) / r.width) * DAY * 1000);
  });
  $('timeline').addEventListener('keydown', (e) => {
    const at = position() ?? dayStart;
    const step = e.shiftKey ? 600000 : 60000;
    if (e.key === 'ArrowRight') playAt(at + step);
    else if (e.key === 'ArrowLeft') playAt(at - step);
    else return;
    e.preventDefault();
  });
  $('pb-prev').addEventListener('click', () => gap(-1));
  $('pb-next').addEventListener('click', () => gap(1));
  for (const b of document.querySelectorAll('.rate')) {
    b.addEventListener('click', () => {
      rate = Number(b.dataset.rate);
      $('pb-video').playbackRate = rate;
      for (const o of document.querySelectorAll('.rate')) o.setAttribute('aria-pressed', String(o === b));
    });
  }
  $('pb-video').addEventListener('timeupdate', moveCursor);
  $('export').addEventListener('submit', exportRange);
  $('ex-here').addEventListener('click', exportHere);
  window.vms.playAt = playAt;
  window.vms.playbackPosition = position;
}

// datetime-local values are local time, to the second.
const local = (ms) => {
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${hhmmss(ms)}`;
};

function exportHere() {
  const at = position() ?? Date.now() - 300000;
  $('ex-start').value = local(at);
  $('ex-end').value = local(at + 300000);
}

function showExport(m) {
  const out = $('ex-result');
  out.innerHTML = '';
  const link = (file, text) => {
    const a = document.createElement('a');
    a.href = `/api/exports/${encodeURIComponent(m.id)}/${encodeURIComponent(file)}`;
    a.download = file.endsWith('.mp4') ? file : `${m.id}_${file}`;
    a.textContent = text;
    return a;
  };
  for (const f of m.files) {
    const p = document.createElement('p');
    p.className = 'ex-file';
    p.dataset.file = f.name;
    p.dataset.sha256 = f.sha256;
    const code = document.createElement('code');
    code.textContent = `SHA-256 ${f.sha256}`;
    p.append(link(f.name, f.name), ` (${(f.size / 1048576).toFixed(1)} MB, ${hhmmss(new Date(f.start).getTime())}–${hhmmss(new Date(f.end).getTime())}) `, code);
    out.append(p);
  }
  if (m.gaps.length) {
    const p = document.createElement('p');
    p.className = 'muted';
    p.textContent = t('ex.gaps', { gaps: m.gaps.map((g) => `${hhmmss(new Date(g.start).getTime())}–${hhmmss(new Date(g.end).getTime())}`).join(', ') });
    out.append(p);
  }
  const p = document.createElement('p');
  p.append(link('manifest.json', t('ex.manifest')), ' · ', link('SHA256SUMS', t('ex.sums')));
  out.append(p);
  out.hidden = false;
}

async function exportRange(e) {
  e.preventDefault();
  const form = $('export');
  const start = new Date($('ex-start').value);
  const end = new Date($('ex-end').value);
  form.dataset.state = 'working';
  $('ex-result').hidden = true;
  $('ex-status').textContent = t('ex.working');
  $('ex-go').disabled = true;
  try {
    const body = JSON.stringify({ start: start.toISOString(), end: end.toISOString(), reason: $('ex-reason').value });
    const r = await api(`/api/cameras/${camera()}/exports`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body });
    const j = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(j.error || r.statusText);
    form.dataset.state = 'done';
    form.dataset.exportId = j.id;
    $('ex-status').textContent = t('ex.done', { id: j.id });
    showExport(j);
  } catch (err) {
    form.dataset.state = 'failed';
    $('ex-status').textContent = t('ex.failed', { why: Number.isNaN(start.getTime()) || Number.isNaN(end.getTime()) ? 'start/end' : err.message });
  } finally {
    $('ex-go').disabled = false;
  }
}

export function showPlayback(status) {
  if (!wired) wire();
  // Evidence export is for admins (the API refuses everyone else).
  $('export').hidden = session.role !== 'admin';
  if (!$('ex-start').value) exportHere();
  const sel = $('pb-camera');
  if (status && !sel.options.length) {
    for (const c of status.cameras) sel.append(new Option(`${c.name} (#${c.id})`, c.id));
  }
  const q = new URLSearchParams(location.hash.split('?')[1] || '');
  if (q.get('camera')) sel.value = q.get('camera');
  if (!$('pb-day').value) {
    const d = new Date();
    $('pb-day').value = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
  }
  load();
}
