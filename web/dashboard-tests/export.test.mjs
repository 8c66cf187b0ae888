// Evidence export from the playback view, in headless Debian chromium:
// an admin exports a recorded range, the page shows each file's SHA-256,
// and the MP4 the browser downloads has that hash. Started by
// tests/it/dashboard.rs, which passes DASH_URL, CHROMIUM, SHOTS and
// DASH_ADMIN / DASH_ADMIN_PASSWORD (an admin to log in as).
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { chromium } from 'playwright-core';

const URL_ = process.env.DASH_URL;
const SHOTS = process.env.SHOTS || os.tmpdir();
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

async function until(what, f, ms = 30000, every = 100) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms: ${what}`);
    await new Promise((ok) => setTimeout(ok, every));
  }
}

describe('evidence export', { skip: URL_ && process.env.DASH_ADMIN ? false : 'DASH_URL or DASH_ADMIN not set (run through cargo test, tests/it/dashboard.rs)' }, () => {
  let browser;
  let page;
  const consoleErrors = [];

  before(async () => {
    browser = await chromium.launch({
      executablePath: CHROMIUM, headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
    });
    const ctx = await browser.newContext({ viewport: { width: 1366, height: 768 }, acceptDownloads: true });
    page = await ctx.newPage();
    page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
    page.on('pageerror', (e) => consoleErrors.push(String(e)));
  });
  after(async () => { await browser?.close(); });

  test('an admin exports a range and downloads an MP4 whose SHA-256 the page showed', async () => {
    await page.goto(`${URL_}/#/playback?camera=1`);
    await page.waitForSelector('#login:not([hidden])');
    await page.fill('#login-user', process.env.DASH_ADMIN);
    await page.fill('#login-password', process.env.DASH_ADMIN_PASSWORD);
    await page.click('#login-submit');
    await page.waitForSelector('#export:not([hidden])');
    // Before the login, /api/me answers 401 (which chromium logs): what
    // counts is the page after it.
    consoleErrors.length = 0;
    // A recorded moment: 6 s that end a second before the newest span's end.
    const span = await until('a recorded span of 8 s', () => page.evaluate(async () => {
      const r = await fetch('/api/cameras/1/playback/list');
      if (!r.ok) return null;
      const s = (await r.json()).at(-1);
      return s && s.duration >= 8 ? s : null;
    }));
    const end = new Date(span.start).getTime() + (span.duration - 1) * 1000;
    const local = (ms) => {
      const d = new Date(ms);
      const p = (n) => String(n).padStart(2, '0');
      return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
    };
    await page.fill('#ex-start', local(end - 6000));
    await page.fill('#ex-end', local(end));
    await page.fill('#ex-reason', 'teste do navegador');
    await page.click('#ex-go');
    await until('the export done', async () => (await page.getAttribute('#export', 'data-state')) === 'done');
    const file = page.locator('#ex-result .ex-file').first();
    const shown = await file.getAttribute('data-sha256');
    assert.match(shown, /^[0-9a-f]{64}$/);
    assert.match(await page.textContent('#ex-result'), new RegExp(`SHA-256 ${shown}`));
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      file.locator('a').click(),
    ]);
    const saved = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'vms-export-')), download.suggestedFilename());
    await download.saveAs(saved);
    const hash = crypto.createHash('sha256').update(fs.readFileSync(saved)).digest('hex');
    assert.equal(hash, shown);
    assert.match(download.suggestedFilename(), /^cam1_.*\.mp4$/);
    await page.screenshot({ path: path.join(SHOTS, 'export-1366.png') });
    // On a phone the form and the long hashes wrap: no sideways scrolling.
    await page.setViewportSize({ width: 390, height: 844 });
    await page.locator('#export').scrollIntoViewIfNeeded();
    const wide = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(wide <= 390, `the page is ${wide} px wide at 390`);
    await page.screenshot({ path: path.join(SHOTS, 'export-390.png') });
    assert.deepEqual(consoleErrors, []);
  });
});
