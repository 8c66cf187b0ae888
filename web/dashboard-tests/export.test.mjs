// Evidence export from the playback view, in headless Debian chromium:
// an admin exports a recorded range, the page shows each file's SHA-256,
// and the MP4 the browser downloads has that hash; the list of exports
// made shows it, newest first, and a download from the list has the hash
// its manifest states; an export the exports disk has no room for is
// refused with the bytes; an operator sees no list. Started by
// tests/it/dashboard.rs, which passes DASH_URL, CHROMIUM, SHOTS,
// DASH_ADMIN / DASH_ADMIN_PASSWORD (an admin to log in as),
// DASH_OPERATOR / DASH_OPERATOR_PASSWORD (an operator) and EXPORTS_DIR
// (the daemon's exports directory, on a small filesystem of its own).
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { chromium } from 'playwright-core';
import { CHROMIUM, until as poll } from '../tests/lib.mjs';

const URL_ = process.env.DASH_URL;
const SHOTS = process.env.SHOTS || os.tmpdir();

// The shared poll, with this file's longer default wait.
const until = (what, f, ms = 30000, every = 100) => poll(what, f, ms, every);

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
    await page.setViewportSize({ width: 1366, height: 768 });
  });

  const local = (ms) => {
    const d = new Date(ms);
    const p = (n) => String(n).padStart(2, '0');
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
  };
  const sha256 = (file) => crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
  async function save(locator) {
    const [download] = await Promise.all([page.waitForEvent('download'), locator.click()]);
    const saved = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'vms-export-')), download.suggestedFilename());
    await download.saveAs(saved);
    return saved;
  }

  test('the exports made are listed newest first, and a download from the list has the SHA-256 of its manifest', async () => {
    const first = await page.getAttribute('#export', 'data-export-id');
    const firstItem = page.locator(`#ex-list .exl-item[data-export-id="${first}"]`);
    await firstItem.waitFor();
    assert.equal(await page.isVisible('#ex-list'), true);
    // A second, shorter export of the same span: it goes to the top.
    const start = new Date(await page.inputValue('#ex-start')).getTime();
    await page.fill('#ex-start', local(start));
    await page.fill('#ex-end', local(start + 3000));
    await page.fill('#ex-reason', 'segunda via');
    await page.click('#ex-go');
    await until('the second export done', async () => {
      const id = await page.getAttribute('#export', 'data-export-id');
      return (await page.getAttribute('#export', 'data-state')) === 'done' && id !== first;
    });
    const second = await page.getAttribute('#export', 'data-export-id');
    await page.locator(`#ex-list .exl-item[data-export-id="${second}"]`).waitFor();
    const ids = await page.$$eval('#ex-list .exl-item', (els) => els.map((e) => e.dataset.exportId));
    assert.deepEqual(ids.slice(0, 2), [second, first]);
    // What each row says: camera, range, reason, who, when, total size.
    const manifest = await page.evaluate(async (id) => (await fetch(`/api/exports/${id}`)).json(), first);
    const text = await firstItem.textContent();
    assert.match(text, /Portaria \(#1\)/);
    assert.match(text, /Motivo: teste do navegador/);
    assert.match(text, new RegExp(`Exportada por ${process.env.DASH_ADMIN} em `));
    assert.match(text, /1 arquivo\(s\), [\d.]+ (kB|MB) no total/);
    assert.equal(Number(await firstItem.getAttribute('data-bytes')), manifest.files.reduce((n, f) => n + f.size, 0));
    assert.equal(await firstItem.getAttribute('data-start'), manifest.start);
    assert.equal(await firstItem.getAttribute('data-end'), manifest.end);
    // The MP4 and the manifest, downloaded from the list: the file's
    // SHA-256 is the one the downloaded manifest states, and SHA256SUMS
    // says the same.
    const mp4 = await save(firstItem.locator('.exl-files a[href$=".mp4"]'));
    const saved = await save(firstItem.locator('.exl-files a[href$="/manifest.json"]'));
    const stated = JSON.parse(fs.readFileSync(saved, 'utf8'));
    assert.equal(stated.id, first);
    assert.equal(sha256(mp4), stated.files[0].sha256);
    assert.equal(path.basename(mp4), stated.files[0].name);
    const sums = fs.readFileSync(await save(firstItem.locator('.exl-files a[href$="/SHA256SUMS"]')), 'utf8');
    assert.equal(sums, `${stated.files[0].sha256}  ${stated.files[0].name}\n`);
    // Its words follow the language.
    await page.click('#lang');
    await until('the list in English', async () => /1 file\(s\).*Exported by/s.test(await firstItem.textContent()));
    await page.click('#lang');
    await until('the list in pt-BR again', async () => /Exportada por/.test(await firstItem.textContent()));
    assert.deepEqual(consoleErrors, []);
  });

  test('an export the exports disk has no room for is refused up front, and the page says how many bytes', { skip: process.env.EXPORTS_DIR ? false : 'EXPORTS_DIR not set' }, async () => {
    const dir = process.env.EXPORTS_DIR;
    const before = await page.$$eval('#ex-list .exl-item', (els) => els.length);
    // Leave 1 MiB free: less than the margin of any export.
    const st = fs.statfsSync(dir);
    const filler = path.join(dir, '.filler');
    fs.writeFileSync(filler, Buffer.alloc(st.bavail * st.bsize - (1 << 20), 0x5a));
    try {
      await page.click('#ex-go');
      await until('refused', async () => (await page.getAttribute('#export', 'data-state')) === 'failed');
      assert.equal(await page.getAttribute('#export', 'data-reason'), 'no-space');
      const said = await page.textContent('#ex-status');
      assert.match(said, /^Sem espaço para esta exportação: ela precisa de [\d.]+ MB e há [\d.]+ (kB|MB) livres no disco das exportações\. Libere espaço ou exporte um intervalo menor\.$/);
      // The daemon's own words, with the bytes, in the title.
      assert.match(await page.getAttribute('#ex-status', 'title'), /needs \d+ bytes .* \d+ bytes .* are free/);
      await page.screenshot({ path: path.join(SHOTS, 'export-no-space-1366.png') });
    } finally {
      fs.rmSync(filler);
    }
    // Nothing was made: the list is as it was.
    const ids = await page.evaluate(async () => (await (await fetch('/api/exports')).json()).exports.length);
    assert.equal(ids, before);
    // Chromium logs the 507 as a failed load; nothing else.
    assert.deepEqual(consoleErrors.filter((m) => !m.startsWith('Failed to load resource')), []);
  });

  test('an operator plays back but sees no export form and no list, and never asks for one', { skip: process.env.DASH_OPERATOR ? false : 'DASH_OPERATOR not set' }, async () => {
    const ctx = await browser.newContext({ viewport: { width: 1366, height: 768 } });
    const op = await ctx.newPage();
    const asked = [];
    op.on('request', (r) => { if (new URL(r.url()).pathname.startsWith('/api/exports')) asked.push(r.url()); });
    await op.goto(`${URL_}/#/playback?camera=1`);
    await op.waitForSelector('#login:not([hidden])');
    await op.fill('#login-user', process.env.DASH_OPERATOR);
    await op.fill('#login-password', process.env.DASH_OPERATOR_PASSWORD);
    await op.click('#login-submit');
    await op.waitForSelector('#playback:not([hidden])');
    await until('the timeline drawn', async () => (await op.getAttribute('#timeline', 'data-spans')) !== null);
    assert.equal(await op.isHidden('#export'), true);
    assert.equal(await op.isHidden('#ex-list'), true);
    assert.equal(await op.locator('.exl-item').count(), 0);
    assert.deepEqual(asked, []);
    await ctx.close();
  });
});
