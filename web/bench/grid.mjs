// The browser's CPU with a 16-tile grid: headless chromium logs in to the
// dashboard of a daemon with 16 cameras (started by the ignored test
// `bench::bench_dashboard_grid_cpu` in tests/it/bench.rs, which passes
// DASH_URL, DASH_USER, DASH_PASSWORD, CHROMIUM), waits until every tile in
// view plays, then measures the CPU of chromium's whole process tree over
// 20 s. Prints one JSON line.
import fs from 'node:fs';
import { chromium } from 'playwright-core';

const URL_ = process.env.DASH_URL;
const SECONDS = Number(process.env.GRID_SECONDS || 20);
const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

// utime + stime of a process, in 1/100 s; 0 once it is gone.
function ticks(pid) {
  try {
    const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return Number(f[11]) + Number(f[12]);
  } catch {
    return 0;
  }
}

// `root` and every process below it.
function tree(root) {
  const children = new Map();
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const ppid = Number(fs.readFileSync(`/proc/${d}/stat`, 'utf8').split(') ')[1].split(' ')[1]);
      if (!children.has(ppid)) children.set(ppid, []);
      children.get(ppid).push(Number(d));
    } catch { /* gone */ }
  }
  const out = [];
  const walk = (p) => { out.push(p); for (const c of children.get(p) || []) walk(c); };
  walk(root);
  return out;
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--allow-loopback-in-peer-connection', '--autoplay-policy=no-user-gesture-required',
  ],
});
try {
  const page = await browser.newPage({ viewport: { width: 1920, height: 1080 } });
  await page.goto(`${URL_}/`);
  await page.waitForSelector('#login:not([hidden])');
  await page.fill('#login-user', process.env.DASH_USER);
  await page.fill('#login-password', process.env.DASH_PASSWORD);
  await page.click('#login-submit');
  const tiles = () => page.evaluate(() => [...document.querySelectorAll('vms-player[data-camera-id]')].map((el) => {
    const r = el.getBoundingClientRect();
    return {
      id: el.dataset.cameraId, protocol: el.dataset.protocol, state: el.dataset.state,
      visible: r.bottom > 0 && r.top < innerHeight && r.right > 0 && r.left < innerWidth,
    };
  }));
  const t0 = Date.now();
  let all;
  for (;;) {
    all = await tiles();
    const shown = all.filter((t) => t.visible);
    if (all.length >= 16 && shown.length && shown.every((t) => t.state === 'playing')) break;
    if (Date.now() - t0 > 90000) throw new Error(`tiles not all playing after 90 s: ${JSON.stringify(all)}`);
    await sleep(200);
  }
  const allPlayingMs = Date.now() - t0;
  // Settle, then measure.
  await sleep(3000);
  // Chromium is this script's child: every process below this one but
  // this one.
  const browserProcesses = () => tree(process.pid).filter((p) => p !== process.pid);
  const before = new Map(browserProcesses().map((p) => [p, ticks(p)]));
  const start = Date.now();
  await sleep(SECONDS * 1000);
  const after = browserProcesses();
  let used = 0;
  for (const p of after) used += ticks(p) - (before.get(p) || 0);
  const cpu = (used / 100) / ((Date.now() - start) / 1000) * 100;
  const final = await tiles();
  const decoding = await page.evaluate(async () => {
    let n = 0;
    for (const el of document.querySelectorAll('vms-player[data-camera-id]')) {
      const v = el.shown;
      if (v && v.getVideoPlaybackQuality && v.getVideoPlaybackQuality().totalVideoFrames > 0) n += 1;
    }
    return n;
  });
  console.log(JSON.stringify({
    tiles: final.length,
    visible: final.filter((t) => t.visible).length,
    playing: final.filter((t) => t.state === 'playing').length,
    webrtc: final.filter((t) => t.protocol === 'webrtc').length,
    hls: final.filter((t) => t.protocol === 'hls').length,
    decoding,
    processes: after.length,
    all_playing_ms: allPlayingMs,
    cpu_percent: Math.round(cpu * 10) / 10,
    seconds: SECONDS,
  }));
} finally {
  await browser.close();
}
