// Shared helpers of the browser tests: the stand-in (mediamtx-sim) on free loopback
// ports, the test page on its own port, and headless Debian chromium via playwright-core.
import { spawn } from 'node:child_process';
import dgram from 'node:dgram';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SIM = process.env.MTXSIM_BIN;

/** Chromium flags: loopback ICE works only with the loopback flag and camera permission. */
export const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--allow-loopback-in-peer-connection', '--autoplay-policy=no-user-gesture-required',
];

/** Why the browser tests cannot run here, or null. */
export function missing() {
  if (!SIM) return 'MTXSIM_BIN is not set (run through cargo test -p mediamtx-sim)';
  if (!fs.existsSync(CHROMIUM)) return `${CHROMIUM} not found (scripts/setup installs chromium)`;
  return null;
}

async function freeTcp() {
  const s = net.createServer();
  await new Promise((ok) => s.listen(0, '127.0.0.1', ok));
  const { port } = s.address();
  await new Promise((ok) => s.close(ok));
  return port;
}

async function freeUdp() {
  const s = dgram.createSocket('udp4');
  await new Promise((ok) => s.bind(0, '127.0.0.1', ok));
  const { port } = s.address();
  await new Promise((ok) => s.close(ok));
  return port;
}

/** Polls `f` until it returns a truthy value; throws `what` after `ms`. */
export async function until(what, f, ms = 10000, every = 100) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms: ${what}`);
    await new Promise((ok) => setTimeout(ok, every));
  }
}

export async function get(url, init) {
  try {
    const r = await fetch(url, init);
    return { status: r.status, body: await r.text() };
  } catch {
    return null;
  }
}

/** Starts the stand-in with `cameras` recording-free cameras; `faults` is the faults
 * document, `extra` more global config lines, `env` more environment variables. */
export async function startSim({ cameras = 1, faults = {}, extra = '', env = {} } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mtxsim-web-'));
  const ports = { api: await freeTcp(), hls: await freeTcp(), webrtc: await freeTcp(), ctl: await freeTcp(), udp: await freeUdp() };
  let yml = `api: yes\napiAddress: 127.0.0.1:${ports.api}\nmetrics: no\nplayback: no\n`
    + `rtspAddress: 127.0.0.1:0\nhlsAddress: 127.0.0.1:${ports.hls}\nwebrtcAddress: 127.0.0.1:${ports.webrtc}\n`
    + `webrtcLocalUDPAddress: 127.0.0.1:${ports.udp}\nhlsVariant: fmp4\nhlsSegmentCount: 3\n${extra}paths:\n`;
  for (let i = 1; i <= cameras; i++) yml += `  cam${i}:\n    source: rtsp://10.0.0.${i}:554/stream\n`;
  fs.writeFileSync(path.join(dir, 'mediamtx.yml'), yml);
  fs.writeFileSync(path.join(dir, 'faults.json'), JSON.stringify(faults));
  const sim = {
    dir, ports,
    hls: `http://127.0.0.1:${ports.hls}`,
    webrtc: `http://127.0.0.1:${ports.webrtc}`,
    api: `http://127.0.0.1:${ports.api}`,
    ctlUrl: `http://127.0.0.1:${ports.ctl}`,
    async start() {
      this.proc = spawn(SIM, [path.join(dir, 'mediamtx.yml')], {
        cwd: dir,
        env: { ...process.env, ...env, MTXSIM_CONTROL: `127.0.0.1:${ports.ctl}`, MTXSIM_FAULTS: path.join(dir, 'faults.json') },
        stdio: ['ignore', fs.openSync(path.join(dir, 'sim.log'), 'a'), 'inherit'],
      });
      await until('the sim started', async () => {
        const r = await get(`${this.ctlUrl}/state`);
        return r && r.status === 200 && JSON.parse(r.body).started;
      });
    },
    async ctl(route) {
      const r = await get(`${this.ctlUrl}${route}`, { method: 'POST' });
      if (!r || r.status !== 200) throw new Error(`control ${route}: ${r && r.body}`);
    },
    async waitReady(name) {
      await until(`${name} ready`, async () => {
        const r = await get(`${this.api}/v3/paths/get/${name}`);
        return r && r.status === 200 && JSON.parse(r.body).ready;
      });
    },
    /** Kills the process (as a MediaMTX crash) and starts it again on the same ports. */
    async restart() {
      await this.stop();
      await this.start();
    },
    async stop() {
      if (!this.proc || this.proc.exitCode !== null) return;
      const done = new Promise((ok) => this.proc.once('exit', ok));
      this.proc.kill('SIGKILL');
      await done;
    },
  };
  await sim.start();
  return sim;
}

/** Serves page.html and the vendored hls.js on a free port of its own. */
export async function startPageServer() {
  const files = {
    '/': ['page.html', 'text/html'],
    '/vendor/hls/hls.min.js': ['../vendor/hls/hls.min.js', 'text/javascript'],
  };
  const server = http.createServer((req, res) => {
    const f = files[req.url];
    if (!f) { res.writeHead(404); res.end(); return; }
    res.writeHead(200, { 'Content-Type': f[1] });
    res.end(fs.readFileSync(path.join(here, f[0])));
  });
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  return { server, url: `http://127.0.0.1:${server.address().port}/` };
}

/** A fresh browser (own profile dir) with a page on the test page. */
export async function openPage() {
  const pages = await startPageServer();
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'chromium-profile-'));
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true,
  });
  await browser.grantPermissions(['camera', 'microphone'], { origin: pages.url.replace(/\/$/, '') });
  const page = browser.pages()[0] || await browser.newPage();
  await page.goto(pages.url);
  return {
    page,
    async close() {
      await browser.close();
      pages.server.close();
      fs.rmSync(profile, { recursive: true, force: true });
    },
  };
}

export const events = (page, kind) => page.evaluate((k) => log.events.filter((e) => e.kind === k), kind);
