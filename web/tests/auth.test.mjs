// How a browser page passes a credential to MediaMTX's live view (docs/mediamtx.md §b2),
// checked in Chromium against the stand-in with `authMethod: http` and an auth server
// run by this test: a Bearer header on the cross-origin WHEP POST, an hls.js xhrSetup
// header that survives the `cookieCheck` redirect, a query token that arrives in
// `query` only, and the 401 a player sees without a credential.
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import { events, missing, openPage, startSim, until } from './lib.mjs';

const skip = missing();
if (skip) console.log(`# browser tests skipped: ${skip}`);

/** Records every decision's body; allows `api`, the token `good`, or `?token=good`. */
async function startAuthServer() {
  const calls = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      const b = JSON.parse(body);
      calls.push(b);
      const ok = b.action === 'api' || b.token === 'good'
        || new URLSearchParams(b.query).get('token') === 'good';
      res.writeHead(ok ? 200 : 401);
      res.end();
    });
  });
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  return { server, calls, url: `http://127.0.0.1:${server.address().port}/auth` };
}

describe('credentials from a browser page', { skip: skip || false }, () => {
  let auth;
  let sim;
  let tab;
  before(async () => {
    auth = await startAuthServer();
    sim = await startSim({
      cameras: 1,
      extra: `authMethod: http\nauthHTTPAddress: ${auth.url}\n`,
      env: { MTXSIM_AUTH_PAUSE_MS: '0' },
    });
    await sim.waitReady('cam1');
  });
  after(async () => {
    await tab?.close();
    await sim?.stop();
    auth?.server.close();
  });
  const fresh = async () => {
    await tab?.close();
    tab = await openPage();
    return tab.page;
  };
  const reads = (protocol) => auth.calls.filter((c) => c.action === 'read' && c.protocol === protocol);

  test('WHEP: an Authorization header on the cross-origin POST', async () => {
    const page = await fresh();
    const url = `${sim.webrtc}/cam1/whep`;
    assert.equal(await page.evaluate((u) => playWhep(u, { Authorization: 'Bearer bad' }), url), 401);
    const status = await page.evaluate((u) => playWhep(u, { Authorization: 'Bearer good' }), url);
    assert.equal(status, 201);
    const calls = reads('webrtc');
    assert.deepEqual(calls.map((c) => c.token), ['bad', 'good']);
    assert.match(calls[1].userAgent, /Chrome/);
    await until('a decoded frame', async () => (await page.evaluate(() => whepStats())).framesDecoded > 0, 10000);
  });

  test('HLS: an xhrSetup header reaches the playlist through the redirect', async () => {
    const page = await fresh();
    const before = reads('hls').length;
    await page.evaluate((u) => playHls(u, 'Bearer good'), `${sim.hls}/cam1/index.m3u8`);
    await until('playing', async () => (await page.evaluate(() => hlsState())).currentTime > 0, 20000);
    const calls = reads('hls').slice(before);
    // One decision per session: the media playlist and the segments ask nothing.
    assert.equal(calls.length, 1, JSON.stringify(calls));
    assert.equal(calls[0].token, 'good');
    assert.equal(calls[0].query, '');
  });

  test('HLS: a query token is only in `query`', async () => {
    const page = await fresh();
    const before = reads('hls').length;
    await page.evaluate((u) => playHls(u), `${sim.hls}/cam1/index.m3u8?token=good`);
    await until('playing', async () => (await page.evaluate(() => hlsState())).currentTime > 0, 20000);
    const calls = reads('hls').slice(before);
    assert.equal(calls.length, 1, JSON.stringify(calls));
    assert.equal(calls[0].token, '');
    assert.equal(calls[0].query, 'token=good');
  });

  test('HLS without a credential: hls.js gets 401', async () => {
    const page = await fresh();
    await page.evaluate((u) => playHls(u), `${sim.hls}/cam1/index.m3u8`);
    const err = await until('a 401 seen by hls.js', async () => (await events(page, 'hls-error')).find((e) => e.code === 401));
    assert.equal(err.fatal, true);
  });
});
