// The playback view: one camera, one day; a timeline of recorded spans
// (MediaMTX's /list through the daemon), click or keys to play from a
// moment (a new /get with a new start), 1x/2x/4x, previous/next gap.
import { t } from './i18n.js';

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
  window.vms.playAt = playAt;
  window.vms.playbackPosition = position;
}

export function showPlayback(status) {
  if (!wired) wire();
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
