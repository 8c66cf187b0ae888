// Footage only in the backup bucket on the playback timeline, in headless
// Debian chromium. Started by tests/it/dashboard.rs
// (footage_only_in_the_bucket_on_the_timeline_in_chromium) against a daemon
// that backed up old footage of camera 1 to a moto bucket and then deleted
// most of it by retention; it passes DASH_URL, CHROMIUM, SHOTS, DASH_USER /
// DASH_PASSWORD (an operator), BUCKET_DAY (the footage's day, São Paulo
// time) and BUCKET_LEDGER (the daemon's gap ledger of that day: one span
// in the bucket, one on disk).
import assert from 'node:assert/strict';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { chromium } from 'playwright-core';
import { CHROMIUM, until as poll } from '../../tests/lib.mjs';

const URL_ = process.env.DASH_URL;
const SHOTS = process.env.SHOTS || os.tmpdir();

// The shared poll, with this file's longer default wait.
const until = (what, f, ms = 30000, every = 100) => poll(what, f, ms, every);

const ready = URL_ && process.env.BUCKET_LEDGER;
describe('footage only in the bucket', { skip: ready ? false : 'DASH_URL or BUCKET_LEDGER not set (run through cargo test, tests/it/dashboard.rs)' }, () => {
  let browser;
  let page;
  const consoleErrors = [];
  const gets = [];

  before(async () => {
    browser = await chromium.launch({
      executablePath: CHROMIUM, headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
    });
    // The box's time zone: the day on the timeline is the box's day.
    const ctx = await browser.newContext({ viewport: { width: 1366, height: 768 }, timezoneId: 'America/Sao_Paulo' });
    page = await ctx.newPage();
    page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
    page.on('pageerror', (e) => consoleErrors.push(String(e)));
    page.on('request', (r) => { if (new URL(r.url()).pathname.endsWith('/playback/get')) gets.push(r.url()); });
  });
  after(async () => { await browser?.close(); });

  test('drawn in its own colour, with the restore command, never as a gap, and not played', async () => {
    const ledger = JSON.parse(process.env.BUCKET_LEDGER);
    const [bucket] = ledger.in_bucket;
    const [disk] = ledger.spans;
    await page.goto(`${URL_}/#/playback?camera=1`);
    await page.waitForSelector('#login:not([hidden])');
    await page.fill('#login-user', process.env.DASH_USER);
    await page.fill('#login-password', process.env.DASH_PASSWORD);
    await page.click('#login-submit');
    await page.waitForSelector('#playback:not([hidden])');
    consoleErrors.length = 0;
    await page.fill('#pb-day', process.env.BUCKET_DAY);
    await until('the day drawn from the ledger', async () => (await page.getAttribute('#timeline', 'data-in-bucket')) === '1');
    assert.equal(await page.getAttribute('#timeline', 'data-source'), 'ledger');

    // One element in the bucket's colour, over exactly the ledger's range.
    const el = page.locator('#timeline .in-bucket');
    assert.equal(await el.count(), 1);
    const same = (a, b) => new Date(a).getTime() === new Date(b).getTime();
    assert.ok(same(await el.getAttribute('data-start'), bucket.start), `${await el.getAttribute('data-start')} vs ${bucket.start}`);
    assert.ok(same(await el.getAttribute('data-end'), bucket.end));
    const tl = await page.locator('#timeline').boundingBox();
    const box = await el.boundingBox();
    const dayStart = new Date(`${process.env.BUCKET_DAY}T00:00:00-03:00`).getTime();
    const x = (t) => tl.x + ((new Date(t).getTime() - dayStart) / 86400000) * tl.width;
    assert.ok(Math.abs(box.x - x(bucket.start)) < 2, `starts at ${box.x}, expected ${x(bucket.start)}`);
    assert.ok(Math.abs(box.x + box.width - x(bucket.end)) < 2, `ends at ${box.x + box.width}, expected ${x(bucket.end)}`);
    const colours = await page.evaluate(() => {
      const style = (sel) => getComputedStyle(document.querySelector(sel)).backgroundImage + getComputedStyle(document.querySelector(sel)).backgroundColor;
      return { bucket: style('#timeline .in-bucket'), disk: style('#timeline .span'), gap: style('#timeline .gap') };
    });
    assert.notEqual(colours.bucket, colours.disk);
    assert.notEqual(colours.bucket, colours.gap);
    // Never a gap: no gap element over any of its time.
    const overlapping = await page.evaluate(([s, e]) => [...document.querySelectorAll('#timeline .gap')]
      .filter((g) => new Date(g.dataset.start) < new Date(e) && new Date(g.dataset.end) > new Date(s))
      .map((g) => `${g.dataset.start}-${g.dataset.end} ${g.dataset.cause}`), [bucket.start, bucket.end]);
    assert.deepEqual(overlapping, []);
    // The title says where it is and how to get it back, in pt-BR.
    const from = new Date(bucket.start).toISOString().replace('.000Z', 'Z');
    const title = await el.getAttribute('title');
    assert.match(title, /^Somente no backup \(S3\)/);
    assert.ok(title.includes(`vms-supervisor backup restore 1 --from ${from} --to `), title);
    // The legend names it.
    assert.match(await page.textContent('.tl-legend'), /Somente no backup \(S3\)/);

    // A click on it plays nothing; it says how to restore instead.
    await el.click();
    await until('the restore note', async () => (await page.textContent('#pb-note')).includes('backup restore 1'));
    assert.deepEqual(gets, []);
    assert.equal(await page.evaluate(() => document.getElementById('pb-video').getAttribute('src')), null);
    await page.screenshot({ path: path.join(SHOTS, 'playback-bucket-1366.png') });

    // The footage still on the disk plays (a click on it asks MediaMTX).
    await page.locator('#timeline .span').click();
    await until('a playback request', async () => gets.length > 0);
    const start = new URL(gets[0]).searchParams.get('start');
    assert.ok(new Date(start) >= new Date(disk.start) && new Date(start) < new Date(disk.end), start);

    // In English too.
    await page.click('#lang');
    await until('the title in English', async () => /^Only in the backup/.test(await el.getAttribute('title')));
    assert.match(await el.getAttribute('title'), /^Only in the backup \(S3\).*vms-supervisor backup restore 1 --from /);
    assert.match(await page.textContent('.tl-legend'), /Only in the backup \(S3\)/);
    await page.click('#lang');
    // The footage on disk is not real video here (bytes the test wrote), so
    // the player may log its failure; nothing else may.
    assert.deepEqual(consoleErrors.filter((m) => !m.startsWith('Failed to load resource')), []);
  });
});
