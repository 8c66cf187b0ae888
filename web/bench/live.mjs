// Measures the stand-in's live view in headless chromium and writes the "Live view from
// the stand-in" section of BENCHMARKS.md (between its markers; the rest of the file is
// kept). Run by scripts/bench inside `unshare -n`, with MTXSIM_BIN set.
//   node bench/live.mjs ../BENCHMARKS.md
import fs from 'node:fs';
import os from 'node:os';
import { missing, openPage, startSim, until } from '../tests/lib.mjs';

const out = process.argv[2];
const why = missing();
if (why) { console.error(`live-view benchmark skipped: ${why}`); process.exit(0); }

const RUNS = 3;
const NTP_EPOCH_OFFSET_MS = 2208988800000;
const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));
const median = (a) => { const s = [...a].sort((x, y) => x - y); return s[Math.floor((s.length - 1) / 2)]; };
const fmt = (v, d = 0) => (v === null || Number.isNaN(v) ? '–' : v.toFixed(d));

function cpuTicks(pid) {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return Number(f[11]) + Number(f[12]); // utime + stime, in 1/100 s
}

async function cpuPercent(pid, seconds) {
  const a = cpuTicks(pid);
  const t = Date.now();
  await sleep(seconds * 1000);
  return ((cpuTicks(pid) - a) / 100) / ((Date.now() - t) / 1000) * 100;
}

async function whepRun(sim, cam) {
  const tab = await openPage();
  const p = tab.page;
  const t0 = await p.evaluate(() => performance.now());
  await p.evaluate((u) => playWhep(u), `${sim.webrtc}/${cam}/whep`);
  const first = await until('first frame', async () => (await p.evaluate(() => log.events.find((e) => e.kind === 'first-frame'))), 15000, 20);
  await sleep(5000);
  const s = await p.evaluate(() => whepStats());
  const now = await p.evaluate(() => Date.now());
  const seen = [];
  for (let i = 0; i < 5; i++) seen.push((await p.evaluate(() => measureLatency())).latencyMs);
  return {
    tab,
    glassMs: median(seen),
    firstFrameMs: first.t - t0,
    jitterMs: s.jitterBufferEmittedCount ? (s.jitterBufferDelay / s.jitterBufferEmittedCount) * 1000 : null,
    playoutMs: s.estimatedPlayoutTimestamp ? now + NTP_EPOCH_OFFSET_MS - s.estimatedPlayoutTimestamp : null,
  };
}

async function hlsRun(sim, cam) {
  const tab = await openPage();
  const p = tab.page;
  const t0 = await p.evaluate(() => performance.now());
  await p.evaluate((u) => playHls(u), `${sim.hls}/${cam}/index.m3u8`);
  const first = await until('first frame', async () => (await p.evaluate(() => log.events.find((e) => e.kind === 'first-frame'))), 30000, 20);
  await sleep(5000);
  const s = await p.evaluate(() => ({ ...hlsState(), now: Date.now() }));
  const seen = [];
  for (let i = 0; i < 5; i++) seen.push((await p.evaluate(() => measureLatency())).latencyMs);
  await tab.close();
  return { glassMs: median(seen), firstFrameMs: first.t - t0, latencyMs: s.playingDate ? s.now - s.playingDate : null, edgeS: s.latency };
}

const sim = await startSim({ cameras: 16 });
for (let i = 1; i <= 16; i++) await sim.waitReady(`cam${i}`);
const whep = [];
for (let i = 0; i < RUNS; i++) { const r = await whepRun(sim, `cam${i + 1}`); await r.tab.close(); whep.push(r); }
const hls = [];
for (let i = 0; i < RUNS; i++) hls.push(await hlsRun(sim, `cam${i + 1}`));

await sleep(3000);
const idle = await cpuPercent(sim.proc.pid, 20);
const viewers = [];
for (let i = 0; i < 4; i++) viewers.push(await whepRun(sim, `cam${i + 1}`));
const sessions = (await (await fetch(`${sim.api}/v3/webrtcsessions/list`)).json()).itemCount;
const busy = await cpuPercent(sim.proc.pid, 20);
const decoding = [];
for (const v of viewers) decoding.push((await v.tab.page.evaluate(() => whepStats())).framesDecoded > 0);
for (const v of viewers) await v.tab.close();
await sim.stop();

const row = (name, all, d = 0) => {
  const vals = all.filter((v) => v !== null && v !== undefined);
  if (!vals.length) return `| ${name} | not reported by the browser | | | 0 |`;
  return `| ${name} | ${fmt(median(vals), d)} | ${fmt(Math.min(...vals), d)} | ${fmt(Math.max(...vals), d)} | ${vals.length} |`;
};
const section = [
  '<!-- live-view:begin (written by web/bench/live.mjs through scripts/bench) -->',
  '## Live view from the stand-in (WHEP and HLS in Chromium)',
  '',
  `Run: ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC on ${os.hostname()} (${os.cpus().length} cores),`,
  `headless Debian chromium, \`mediamtx-sim\` with 16 cameras (live fixture 640x360, 25 fps, 2 s GOP),`,
  'everything on loopback inside `unshare -n`. First frame = from just before the offer is',
  'created (WHEP) or `hls.loadSource` (HLS) to the `<video>` element\'s first',
  '`requestVideoFrameCallback`.',
  '',
  '| Measure | Median | Min | Max | Runs |',
  '|---|---|---|---|---|',
  row('WHEP: time to first decoded frame (ms)', whep.map((r) => r.firstFrameMs)),
  row('WHEP: jitter buffer delay per frame, `jitterBufferDelay/jitterBufferEmittedCount` (ms)', whep.map((r) => r.jitterMs), 1),
  row('WHEP: capture-to-playout, page clock − `estimatedPlayoutTimestamp` (ms)', whep.map((r) => r.playoutMs)),
  row('WHEP: capture-to-display from the burned-in frame number (ms)', whep.map((r) => r.glassMs)),
  row('HLS: time to first decoded frame (ms)', hls.map((r) => r.firstFrameMs)),
  row('HLS: capture-to-display from the burned-in frame number (ms)', hls.map((r) => r.glassMs)),
  row('HLS: `Date.now() − hls.playingDate` after 5 s (ms)', hls.map((r) => r.latencyMs)),
  row('HLS: `hls.latency`, distance to the live edge (s)', hls.map((r) => r.edgeS), 2),
  `| Stand-in CPU, 16 cameras, no viewer (% of one core, 20 s) | ${fmt(idle, 2)} % | | | 1 |`,
  `| Stand-in CPU, 16 cameras + 4 WebRTC viewers (% of one core, 20 s) | ${fmt(busy, 2)} % | | | 1 |`,
  '',
  `Notes: ${sessions} WebRTC sessions were open during the CPU measure; all 4 viewers decoding: ${decoding.every(Boolean)}.`,
  'The stand-in starts a WebRTC session at the next keyframe (GOP 2 s), so the WHEP first',
  'frame includes 0–2 s of waiting; HLS waits for two complete 2 s segments after the next',
  'keyframe (4–6 s), as MediaMTX does for a new muxer. These are the stand-in\'s share of',
  'the dashboard\'s numbers. Capture-to-display reads the frame number the fixture carries',
  '(ten squares, see `sim/fixtures/make-live-fixture.sh`) from the painted frame and',
  'compares the wall time that frame stands for with the page clock (same host).',
  'Chrome reports no `estimatedPlayoutTimestamp` for this video-only session although str0m',
  'sends RTCP sender reports; it likely fills it only in its audio/video synchronisation.',
  'It is the median of 5 frames per run.',
  '<!-- live-view:end -->',
].join('\n');

let doc = fs.existsSync(out) ? fs.readFileSync(out, 'utf8') : '# Benchmarks\n';
const re = /<!-- live-view:begin[\s\S]*?<!-- live-view:end -->/;
doc = re.test(doc) ? doc.replace(re, section) : `${doc.trimEnd()}\n\n${section}\n`;
fs.writeFileSync(out, doc);
console.log(section);
