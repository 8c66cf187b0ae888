// The playback view: one camera, one day; a timeline from the daemon's gap
// ledger (`/recordings`: footage on the box's disk, footage only in the
// backup bucket, gaps with their cause; MediaMTX's /list through the daemon
// when the ledger cannot be had), click or keys to play from a moment (a
// new /get with a new start), 1x/2x/4x, previous/next gap; and for admins,
// the evidence export of a range (MP4 files, manifest, SHA256SUMS) with its
// hashes and downloads, and the list of the exports made.
import { language, t } from './i18n.js';
import { api, session } from './session.js';

const $ = (id) => document.getElementById(id);
const DAY = 86400;
let spans = []; // on the box's disk: playable
let inBucket = []; // only in the backup bucket: not playable here
let gaps = []; // no footage anywhere, with the cause (ledger only)
let source = 'ledger';
let dayStart = 0; // ms, local midnight
let playingFrom = null; // ms of the moment the current /get starts at
let rate = 1;
let wired = false;

const pad = (n) => String(n).padStart(2, '0');
const hhmmss = (ms) => { const d = new Date(ms); return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`; };

function camera() { return $('pb-camera').value; }

const ms = (x) => ({ start: new Date(x.start).getTime(), end: new Date(x.end).getTime() });

let loads = 0;

async function load() {
  const mine = ++loads;
  const [y, m, d] = $('pb-day').value.split('-').map(Number);
  dayStart = new Date(y, m - 1, d).getTime();
  const start = encodeURIComponent(new Date(dayStart).toISOString());
  const end = encodeURIComponent(new Date(dayStart + DAY * 1000).toISOString());
  const cam = camera();
  let next = { spans: [], inBucket: [], gaps: [], source: 'ledger' };
  try {
    const r = await fetch(`/api/cameras/${cam}/recordings?from=${start}&to=${end}`);
    if (r.ok) {
      const l = await r.json();
      next.spans = l.spans.map(ms);
      next.inBucket = (l.in_bucket || []).map(ms);
      next.gaps = l.gaps.map((g) => ({ ...ms(g), cause: g.cause }));
    } else {
      // No segment catalog on this box: what MediaMTX lists.
      next.source = 'list';
      const r2 = await fetch(`/api/cameras/${cam}/playback/list?start=${start}&end=${end}`);
      if (r2.ok) {
        next.spans = (await r2.json()).map((s) => {
          const a = new Date(s.start).getTime();
          return { start: a, end: a + s.duration * 1000 };
        });
      }
    }
  } catch { /* shown as no recordings */ }
  // A camera or day changed meanwhile: the newer load draws its answer.
  if (mine !== loads) return;
  ({ spans, inBucket, gaps, source } = next);
  draw();
}

const iso = (t0) => new Date(t0).toISOString().replace(/\.\d{3}Z$/, 'Z');

// The command that brings footage back from the bucket (whole seconds
// around the span).
function restoreCommand(s) {
  const from = iso(Math.floor(s.start / 1000) * 1000);
  const to = iso(Math.ceil(s.end / 1000) * 1000);
  return `vms-supervisor backup restore ${camera()} --from ${from} --to ${to} --dir ${language() === 'en' ? 'FOLDER' : 'PASTA'}`;
}

function bar(cls, s) {
  const el = document.createElement('div');
  el.className = cls;
  el.style.left = `${((s.start - dayStart) / (DAY * 10))}%`;
  el.style.width = `${Math.max(0.1, (s.end - s.start) / (DAY * 10))}%`;
  el.dataset.start = new Date(s.start).toISOString();
  el.dataset.end = new Date(s.end).toISOString();
  return el;
}

function draw() {
  const tl = $('timeline');
  tl.innerHTML = '';
  tl.dataset.source = source;
  for (const g of gaps) {
    const el = bar('gap', g);
    el.dataset.cause = g.cause;
    el.title = t('pb.gap', { cause: t(`cause.${g.cause}`) });
    tl.append(el);
  }
  for (const s of inBucket) {
    const el = bar('in-bucket', s);
    el.title = t('pb.inBucket', { cmd: restoreCommand(s) });
    tl.append(el);
  }
  for (const s of spans) tl.append(bar('span', s));
  const cur = document.createElement('div');
  cur.className = 'cursor';
  tl.append(cur);
  tl.dataset.spans = spans.length;
  tl.dataset.inBucket = inBucket.length;
  $('pb-note').textContent = '';
  $('pb-pos').textContent = spans.length ? '' : t('pb.none');
  moveCursor();
}

// Footage only in the bucket at `at` (and not on the disk too).
function bucketAt(at) {
  if (spans.some((x) => at >= x.start && at < x.end)) return null;
  return inBucket.find((x) => at >= x.start && at < x.end) || null;
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
    const at = dayStart + ((e.clientX - r.left) / r.width) * DAY * 1000;
    // The box cannot play what only the bucket has: say how to get it back.
    const b = bucketAt(at);
    if (b) {
      $('pb-note').textContent = t('pb.inBucket', { cmd: restoreCommand(b) });
      return;
    }
    $('pb-note').textContent = '';
    playAt(at);
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
  // Words drawn by this view follow the language.
  document.addEventListener('vms-language', () => {
    if ($('playback').hidden) return;
    draw();
    loadExports();
  });
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

// Bytes as people read them: "12.3 MB" (decimal, as file managers show).
function size(b) {
  if (b >= 1e9) return `${(b / 1e9).toFixed(2)} GB`;
  if (b >= 1e6) return `${(b / 1e6).toFixed(1)} MB`;
  return `${Math.max(1, Math.round(b / 1e3))} kB`;
}

// A download link to a file of export `m` (saved under the name the
// daemon gives it).
function exportLink(m, file, text) {
  const a = document.createElement('a');
  a.href = `/api/exports/${encodeURIComponent(m.id)}/${encodeURIComponent(file)}`;
  a.download = file.endsWith('.mp4') ? file : `${m.id}_${file}`;
  a.textContent = text;
  return a;
}

function showExport(m) {
  const out = $('ex-result');
  out.innerHTML = '';
  const link = (file, text) => exportLink(m, file, text);
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
  delete form.dataset.reason;
  $('ex-status').title = '';
  $('ex-result').hidden = true;
  $('ex-status').textContent = t('ex.working');
  $('ex-go').disabled = true;
  try {
    const body = JSON.stringify({ start: start.toISOString(), end: end.toISOString(), reason: $('ex-reason').value });
    const r = await api(`/api/cameras/${camera()}/exports`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body });
    const j = await r.json().catch(() => ({}));
    if (r.status === 507 && j.needed_bytes != null) {
      // Refused before it started: too little room on the exports disk.
      form.dataset.state = 'failed';
      form.dataset.reason = 'no-space';
      let text = t('ex.noSpace', { needed: size(j.needed_bytes), available: size(j.available_bytes) });
      if (j.floor_bytes) text += t('ex.noSpaceFloor', { floor: size(j.floor_bytes) });
      $('ex-status').textContent = text + t('ex.noSpaceHint');
      $('ex-status').title = j.error;
      return;
    }
    if (!r.ok) throw new Error(j.error || r.statusText);
    form.dataset.state = 'done';
    form.dataset.exportId = j.id;
    $('ex-status').textContent = t('ex.done', { id: j.id });
    showExport(j);
    loadExports();
  } catch (err) {
    form.dataset.state = 'failed';
    $('ex-status').textContent = t('ex.failed', { why: Number.isNaN(start.getTime()) || Number.isNaN(end.getTime()) ? 'start/end' : err.message });
  } finally {
    $('ex-go').disabled = false;
  }
}

const when = (x) => new Date(x).toLocaleString(language());

// The exports made, newest first (admins only: the API refuses everyone
// else, so nobody else asks).
export async function loadExports() {
  const box = $('ex-list');
  if (session.role !== 'admin') { box.hidden = true; return; }
  const items = $('exl-items');
  let list;
  try {
    const r = await api('/api/exports');
    const j = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(j.error || r.statusText);
    list = j.exports;
  } catch (err) {
    items.innerHTML = '';
    $('exl-empty').hidden = false;
    $('exl-empty').textContent = t('exl.failed', { why: err.message });
    box.hidden = false;
    return;
  }
  // As the API gives them (newest first), kept so if it ever did not.
  const at = (m) => new Date(m.exported_at).getTime();
  list.sort((a, b) => at(b) - at(a));
  items.innerHTML = '';
  $('exl-empty').textContent = t('exl.none');
  $('exl-empty').hidden = list.length > 0;
  for (const m of list) {
    const li = document.createElement('li');
    li.className = 'exl-item';
    li.dataset.exportId = m.id;
    li.dataset.cameraId = m.camera_id;
    li.dataset.start = m.start;
    li.dataset.end = m.end;
    const total = m.files.reduce((n, f) => n + f.size, 0);
    li.dataset.bytes = total;
    const head = document.createElement('p');
    const b = document.createElement('b');
    b.textContent = `${m.camera_name} (#${m.camera_id})`;
    head.append(b, ` · ${when(m.start)} – ${when(m.end)} · `, t('exl.total', { n: m.files.length, size: size(total) }));
    const reason = document.createElement('p');
    reason.className = 'exl-reason';
    reason.textContent = `${t('exl.reason')}: ${m.reason || t('exl.noReason')}`;
    const by = document.createElement('p');
    by.className = 'muted exl-by';
    by.textContent = `${t('exl.by', { who: m.exported_by, when: when(m.exported_at) })} · ${m.id}`;
    const files = document.createElement('p');
    files.className = 'exl-files';
    for (const f of m.files) {
      const a = exportLink(m, f.name, f.name);
      a.dataset.sha256 = f.sha256;
      a.title = `SHA-256 ${f.sha256} · ${size(f.size)}`;
      files.append(a, ' ');
    }
    files.append('· ', exportLink(m, 'manifest.json', t('ex.manifest')), ' · ', exportLink(m, 'SHA256SUMS', t('ex.sums')));
    li.append(head, reason, by, files);
    items.append(li);
  }
  box.hidden = false;
}

export function showPlayback(status) {
  if (!wired) wire();
  // Evidence export is for admins (the API refuses everyone else).
  $('export').hidden = session.role !== 'admin';
  loadExports();
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
