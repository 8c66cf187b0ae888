// Every player fault of the stand-in, as the page observes it (the dashboard's player
// must handle each). Faults are set through the stand-in's control endpoint.
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import { events, missing, openPage, startSim, until } from './lib.mjs';

const skip = missing();

describe('player faults', { skip: skip || false }, () => {
  let sim;
  let tab;
  before(async () => {
    sim = await startSim({ cameras: 2 });
    await sim.waitReady('cam1');
  });
  beforeEach(async () => {
    await fetch(`${sim.ctlUrl}/faults`, { method: 'PUT' });
    await tab?.close();
    tab = await openPage();
  });
  after(async () => {
    await tab?.close();
    await sim?.stop();
  });
  const whep = (name = 'cam1') => tab.page.evaluate((u) => playWhep(u), `${sim.webrtc}/${name}/whep`);
  const stats = () => tab.page.evaluate(() => whepStats());

  test('WHEP answers 500', async () => {
    await sim.ctl('/whep?mode=fail');
    assert.equal(await whep(), 500);
  });

  test('WHEP answers 404 (path not ready)', async () => {
    await sim.ctl('/whep?mode=not_found');
    assert.equal(await whep(), 404);
    // The same answer as for a camera that is really down.
    await sim.ctl('/cameras/cam2/down?mode=closed');
    await until('cam2 not ready', async () => {
      const r = await (await fetch(`${sim.api}/v3/paths/get/cam2`)).json();
      return !r.ready;
    });
    await sim.ctl('/whep?mode=default');
    assert.equal(await whep('cam2'), 404);
  });

  test('WHEP answers 201 but ICE never connects', async () => {
    await sim.ctl('/whep?mode=no_ice');
    assert.equal(await whep(), 201);
    // ICE checks go to a closed port: never connected; Chrome gives up with "failed".
    await until('ICE failed', async () => (await events(tab.page, 'connection')).some((e) => e.state === 'failed'), 40000);
    assert.ok(!(await events(tab.page, 'connection')).some((e) => e.state === 'connected'));
    assert.equal((await stats()).framesDecoded || 0, 0);
  });

  test('ICE connects but no frame arrives (black video)', async () => {
    await sim.ctl('/whep?mode=no_media');
    assert.equal(await whep(), 201);
    await until('connected', async () => (await stats()).connectionState === 'connected');
    // Three seconds connected, and not a single frame: what a stall watchdog must catch.
    await new Promise((ok) => setTimeout(ok, 3000));
    const s = await stats();
    assert.equal(s.connectionState, 'connected');
    assert.equal(s.framesDecoded || 0, 0);
  });

  test('the WebRTC stream freezes after N seconds', async () => {
    await sim.ctl('/stream/freeze?after_secs=1');
    assert.equal(await whep(), 201);
    const first = await until('frames', async () => { const s = await stats(); return s.framesDecoded > 0 && s; });
    // Frames stop: framesDecoded stays put for 2 s while the connection stays up.
    const frozen = await until('frames stop', async () => {
      const a = (await stats()).framesDecoded;
      await new Promise((ok) => setTimeout(ok, 2000));
      const b = await stats();
      return a === b.framesDecoded && b;
    }, 15000, 0);
    assert.ok(frozen.framesDecoded >= first.framesDecoded);
    assert.equal(frozen.connectionState, 'connected');
  });

  test('HLS: 404 until the path is ready, then it plays', async () => {
    await sim.ctl('/cameras/cam2/down?mode=closed');
    await until('cam2 not ready', async () => !(await (await fetch(`${sim.api}/v3/paths/get/cam2`)).json()).ready);
    await tab.page.evaluate((u) => playHls(u), `${sim.hls}/cam2/index.m3u8`);
    const err = await until('a 404 seen by hls.js', async () => (await events(tab.page, 'hls-error')).find((e) => e.code === 404));
    assert.equal(err.fatal, true);
    await sim.ctl('/cameras/cam2/up');
    await sim.waitReady('cam2');
    // A new hls.js instance (what the player does after a fatal error) now plays.
    await tab.page.evaluate((u) => { hls.destroy(); playHls(u); }, `${sim.hls}/cam2/index.m3u8`);
    await until('playing', async () => (await tab.page.evaluate(() => hlsState())).currentTime > 0, 20000);
  });

  test('HLS freezes after N seconds: currentTime stops', async () => {
    await sim.ctl('/stream/freeze?after_secs=6');
    await tab.page.evaluate((u) => playHls(u), `${sim.hls}/cam1/index.m3u8`);
    await until('playing', async () => (await tab.page.evaluate(() => hlsState())).currentTime > 0, 20000);
    await until('currentTime stops', async () => {
      const a = (await tab.page.evaluate(() => hlsState())).currentTime;
      await new Promise((ok) => setTimeout(ok, 1500));
      return a === (await tab.page.evaluate(() => hlsState())).currentTime;
    }, 30000, 0);
  });

  test('a MediaMTX restart drops every session', async () => {
    assert.equal(await whep(), 201);
    await until('frames', async () => (await stats()).framesDecoded > 0);
    const second = await openPage();
    try {
      await second.page.evaluate((u) => playHls(u), `${sim.hls}/cam1/index.m3u8`);
      await until('HLS playing', async () => (await second.page.evaluate(() => hlsState())).currentTime > 0, 20000);
      await sim.restart();
      // WebRTC: the connection leaves "connected" (consent checks go unanswered).
      await until('WebRTC disconnected', async () => {
        const s = (await stats()).connectionState;
        return s === 'disconnected' || s === 'failed';
      }, 40000);
      // HLS: the old session is unknown to the new process: 401 on the media playlist.
      await until('HLS 401', async () => (await events(second.page, 'hls-error')).some((e) => e.code === 401), 30000);
      // And the player comes back by itself with a fresh session.
      await sim.waitReady('cam1');
      await tab.page.evaluate(() => { pc.close(); });
      assert.equal(await whep(), 201);
      await until('frames again', async () => (await stats()).framesDecoded > 0);
    } finally {
      await second.close();
    }
  });
});
