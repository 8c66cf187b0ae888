// Checklist C9 ("Playback de gravações funcionando") in headless Debian chromium:
// the daemon's dashboard, view "Gravações", plays a recorded moment of camera 1
// through the daemon's playback routes, then seeks to another moment.
// Started by the scenario acceptance_playback_in_chromium (tests/it/acceptance.rs),
// which passes DASH_URL (the daemon's API) and RESULT (where the measures go).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(new URL('../web/package.json', import.meta.url));
const { chromium } = require('playwright-core');

const URL_ = process.env.DASH_URL;
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
  '--disable-background-networking', '--autoplay-policy=no-user-gesture-required'];

async function until(what, f, ms = 20000, every = 50) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms: ${what}`);
    await new Promise((ok) => setTimeout(ok, every));
  }
}

const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'chromium-pb-'));
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: CHROMIUM, args: ARGS, headless: true, viewport: { width: 1366, height: 768 },
});
const result = {};
const errors = [];
try {
  const page = browser.pages()[0] || await browser.newPage();
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(`${URL_}/#/playback?camera=1`);
  // Playback needs an operator's session (DASH_USER / DASH_PASSWORD).
  await page.waitForSelector('#login:not([hidden])');
  await page.fill('#login-user', process.env.DASH_USER);
  await page.fill('#login-password', process.env.DASH_PASSWORD);
  await page.click('#login-submit');
  await page.waitForSelector('#login', { state: 'hidden' });
  const spans = await until('the timeline lists recorded spans', () => page.evaluate(() => {
    const els = [...document.querySelectorAll('#timeline .span')];
    return els.length && els.map((e) => ({ start: Date.parse(e.dataset.start), end: Date.parse(e.dataset.end) }));
  }));
  result.spans = spans.length;
  const s = spans[0];
  const video = () => page.evaluate(() => {
    const v = document.getElementById('pb-video');
    return { t: v.currentTime, w: v.videoWidth, err: v.error && v.error.code, pos: window.vms.playbackPosition() };
  });
  // Play from 2 s into the first span.
  const first = s.start + 2000;
  let t0 = Date.now();
  await page.evaluate((ms) => window.vms.playAt(ms), first);
  await until('the recording plays (currentTime advances past 1 s)', async () => {
    const v = await video();
    if (v.err) throw new Error(`video error ${v.err}`);
    return v.t > 1 && v.w > 0;
  });
  result.play_ms = Date.now() - t0;
  // Seek: to a later moment of the same span (or of the last span).
  const last = spans[spans.length - 1];
  const target = Math.max(first + 3000, Math.min(last.end - 3000, last.start + 6000));
  t0 = Date.now();
  await page.evaluate((ms) => window.vms.playAt(ms), target);
  await until('the seek plays (a new request, currentTime advances again)', async () => {
    const x = await video();
    if (x.err) throw new Error(`video error ${x.err}`);
    const src = await page.evaluate(() => document.getElementById('pb-video').dataset.start);
    return Date.parse(src) === target && x.t > 0.5;
  });
  result.seek_ms = Date.now() - t0;
  result.page_errors = errors.length;
} finally {
  await browser.close();
  fs.rmSync(profile, { recursive: true, force: true });
  fs.writeFileSync(process.env.RESULT, JSON.stringify({ ...result, errors }, null, 2));
}
