// The stand-in's live view in a real browser: WHEP (framesDecoded grows) and HLS with
// hls.js (currentTime advances), and every player fault of the stand-in as the page
// sees it. Run by sim/tests/it/browser.rs inside `unshare -n` (loopback only).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { events, get, missing, openPage, startSim, until } from './lib.mjs';

const skip = missing();
if (skip) console.log(`# browser tests skipped: ${skip}`);

describe('live view from the stand-in', { skip: skip || false }, () => {
  let sim;
  let tab;
  before(async () => {
    sim = await startSim({ cameras: 2 });
    await sim.waitReady('cam1');
  });
  after(async () => {
    await sim?.stop();
  });
  const fresh = async () => {
    await tab?.close();
    tab = await openPage();
    return tab.page;
  };
  after(async () => tab?.close());

  test('WHEP: the browser decodes frames', async () => {
    const page = await fresh();
    const status = await page.evaluate((u) => playWhep(u), `${sim.webrtc}/cam1/whep`);
    assert.equal(status, 201);
    const s1 = await until('a decoded frame', async () => {
      const s = await page.evaluate(() => whepStats());
      return s.framesDecoded > 0 && s;
    }, 10000);
    assert.equal(s1.width, 640);
    assert.equal(s1.height, 360);
    const s2 = await until('more frames', async () => {
      const s = await page.evaluate(() => whepStats());
      return s.framesDecoded >= s1.framesDecoded + 25 && s;
    }, 5000);
    assert.ok(s2.framesDecoded > s1.framesDecoded);
    // The burned-in frame number maps to the wall clock: what the page shows was made
    // less than a second ago.
    const l = await page.evaluate(() => measureLatency());
    assert.ok(l.latencyMs > -200 && l.latencyMs < 1000, JSON.stringify(l));
    // The session is listed by the control API while it plays.
    const list = await (await fetch(`${sim.api}/v3/webrtcsessions/list`)).json();
    assert.equal(list.itemCount, 1);
    assert.equal(list.items[0].path, 'cam1');
    assert.equal(list.items[0].peerConnectionEstablished, true);
  });

  test('WHEP: each camera shows its own picture', async () => {
    // The stand-in renders each camera's picture in the background (cached on disk).
    const state = async () => JSON.parse((await get(`${sim.ctlUrl}/state`)).body).paths;
    const paths = await until('both cameras\' own pictures',
      async () => { const p = await state(); return p.cam1.picture.own && p.cam2.picture.own && p; },
      90000);
    assert.notEqual(paths.cam1.picture.code, paths.cam2.picture.code);
    for (const cam of ['cam1', 'cam2']) {
      const page = await fresh();
      assert.equal(await page.evaluate((u) => playWhep(u), `${sim.webrtc}/${cam}/whep`), 201);
      await until(`${cam} decoded`, async () => (await page.evaluate(() => whepStats())).framesDecoded > 0, 10000);
      assert.equal(await page.evaluate(() => frameCode()), paths[cam].picture.code, cam);
    }
  });

  test('HLS: hls.js plays and currentTime advances', async () => {
    const page = await fresh();
    await page.evaluate((u) => playHls(u), `${sim.hls}/cam1/index.m3u8`);
    const t1 = await until('playback started', async () => {
      const s = await page.evaluate(() => hlsState());
      return s.currentTime > 0 && s;
    }, 20000);
    await until('currentTime advances by 1 s', async () => {
      const s = await page.evaluate(() => hlsState());
      return s.currentTime >= t1.currentTime + 1;
    }, 6000);
    const s = await page.evaluate(() => hlsState());
    assert.ok(s.playingDate > 0, 'EXT-X-PROGRAM-DATE-TIME gives hls.playingDate');
    // The program date-time and the burned-in clock agree (within a second).
    const m = await page.evaluate(async () => {
      const l = await measureLatency();
      return { ...l, pdtLatency: Date.now() - hls.playingDate.getTime() };
    });
    assert.ok(Math.abs(m.latencyMs - m.pdtLatency) < 1000, JSON.stringify(m));
  });
});
