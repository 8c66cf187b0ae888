// <vms-player camera-id="1">: the live view of one camera.
//
// WebRTC (WHEP) first: `whep_tries` tries of `whep_try_ms` each; a try
// succeeds at the first decoded frame. A certain failure (an HTTP error such
// as 404/500, a refused connection, ICE "failed") ends its try at once.
// HLS (hls.js) is started in the background, on a hidden <video>, as soon as
// the player starts: MediaMTX makes an HLS muxer only when asked and its
// first playlist needs whole segments, so by the time WebRTC is declared
// failed the HLS video is already playing and only has to be shown. When
// WebRTC plays, the background HLS is stopped. While on HLS, WebRTC is tried
// again every `webrtc_retry_ms` on a hidden <video> and shown only once it
// decodes frames (no black frame). A watchdog restarts whatever shows no new
// frame for `stall_ms`, which also brings the tile back after a MediaMTX
// restart. Hooks: data-camera-id, data-protocol (webrtc|hls|none),
// data-state (connecting|playing|failed).
import { t } from './i18n.js';
import { api, mediaAuth, session } from './session.js';

let settingsPromise = null;
export function liveSettings() {
  // The page's query may override a number (`?whep_try_ms=2000`), for tests
  // and for a site that wants another policy on one screen.
  settingsPromise ??= fetch('/ui/settings.json').then((r) => r.json()).then((s) => {
    const q = new URLSearchParams(location.search);
    for (const k of Object.keys(s)) if (q.has(k) && Number.isFinite(Number(q.get(k)))) s[k] = Number(q.get(k));
    return s;
  });
  return settingsPromise;
}

class Certain extends Error {}

// One WHEP session on `video`; resolves at the first decoded frame.
function whep(url, video, ms) {
  const pc = new RTCPeerConnection();
  const ctrl = new AbortController();
  let session = null;
  const close = () => {
    ctrl.abort();
    pc.close();
    if (session) fetch(session, { method: 'DELETE' }).catch(() => {});
  };
  const started = performance.now();
  const done = new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error('timeout')), ms);
    const failNow = (e) => { clearTimeout(timer); fail(e); };
    pc.addTransceiver('video', { direction: 'recvonly' });
    pc.ontrack = (e) => {
      if (e.track.kind !== 'video') return;
      video.srcObject = e.streams[0] || new MediaStream([e.track]);
      video.play().catch(() => {});
      video.requestVideoFrameCallback(() => { clearTimeout(timer); ok(performance.now() - started); });
    };
    pc.onconnectionstatechange = () => {
      if (pc.connectionState === 'failed') failNow(new Certain('ice failed'));
    };
    (async () => {
      await pc.setLocalDescription(await pc.createOffer());
      await new Promise((gathered) => {
        if (pc.iceGatheringState === 'complete') return gathered();
        pc.onicegatheringstatechange = () => pc.iceGatheringState === 'complete' && gathered();
        setTimeout(gathered, 1000);
      });
      let r;
      try {
        r = await fetch(url, {
          method: 'POST', headers: { 'Content-Type': 'application/sdp', ...mediaAuth() },
          body: pc.localDescription.sdp, signal: ctrl.signal,
        });
      } catch (e) {
        throw new Certain(`refused: ${e.message}`);
      }
      if (r.status !== 201) throw new Certain(`HTTP ${r.status}`);
      session = new URL(r.headers.get('Location'), url).href;
      await pc.setRemoteDescription({ type: 'answer', sdp: await r.text() });
    })().catch(failNow);
  });
  return { pc, done, close };
}

class VmsPlayer extends HTMLElement {
  connectedCallback() {
    this.cameraId = this.getAttribute('camera-id');
    this.dataset.cameraId = this.cameraId;
    this.innerHTML = '<video muted playsinline autoplay></video><video class="standby" muted playsinline autoplay></video>'
      + '<span class="badge" aria-live="polite"></span>'
      + `<button type="button" class="full" aria-label="${t('live.full')}"><svg viewBox="0 0 16 16" width="14" height="14" aria-hidden="true"><path d="M1 6V1h5M10 1h5v5M15 10v5h-5M6 15H1v-5" fill="none" stroke="currentColor" stroke-width="2"/></svg></button>`;
    this.querySelector('.full').addEventListener('click', () => this.toggleFull());
    this.log = [];
    this.timers = new Set();
    this.gen = 0;
    this.onLanguage = () => this.badge();
    document.addEventListener('vms-language', this.onLanguage);
    this.set('none', 'connecting');
    this.observer = new IntersectionObserver((es) => {
      const visible = es.some((e) => e.isIntersecting);
      if (visible && !this.running) this.start();
      if (!visible && this.running) this.stop();
    });
    this.observer.observe(this);
  }

  disconnectedCallback() {
    this.observer.disconnect();
    document.removeEventListener('vms-language', this.onLanguage);
    this.stop();
  }

  toggleFull() {
    if (document.fullscreenElement) document.exitFullscreen();
    else this.requestFullscreen().catch(() => {});
  }

  note(kind, data = {}) {
    this.log.push({ t: performance.now(), kind, ...data });
    if (this.log.length > 200) this.log.shift();
  }

  set(protocol, state) {
    this.dataset.protocol = protocol;
    this.dataset.state = state;
    this.badge();
  }

  badge() {
    const b = this.querySelector('.badge');
    if (!b) return;
    const { protocol, state } = this.dataset;
    b.textContent = state === 'playing' ? t(`live.${protocol}`) : t(`live.${state}`);
  }

  later(f, ms) {
    const id = setTimeout(() => { this.timers.delete(id); f(); }, ms);
    this.timers.add(id);
  }

  get shown() { return this.querySelector('video:not(.standby)'); }
  get hidden() { return this.querySelector('video.standby'); }

  swap() {
    const [a, b] = [this.shown, this.hidden];
    a.classList.add('standby');
    b.classList.remove('standby');
  }

  stop() {
    this.running = false;
    this.gen++;
    for (const id of this.timers) clearTimeout(id);
    this.timers.clear();
    this.stopWebrtc();
    this.stopHls();
    for (const v of this.querySelectorAll('video')) { v.srcObject = null; v.removeAttribute('src'); v.load(); }
  }

  stopWebrtc() { if (this.rtc) { this.rtc.close(); this.rtc = null; } }
  stopHls() { if (this.hls) { this.hls.destroy(); this.hls = null; this.hlsVideo = null; } }

  async start() {
    this.stop();
    this.running = true;
    const gen = this.gen;
    const s = await liveSettings();
    if (gen !== this.gen) return;
    this.s = s;
    // MediaMTX speaks what the page came over: HTTPS when the daemon does
    // (it is given the same certificate), else HTTP.
    const origin = `${location.protocol}//${location.hostname}`;
    this.whepUrl = `${origin}:${s.webrtc_port}/cam_${this.cameraId}/whep`;
    // The media token in the query as well: MediaMTX authorizes the request
    // that follows its redirect to ?cookieCheck=1, which keeps the query
    // (docs/mediamtx.md §b2).
    const token = session.media ? `?token=${encodeURIComponent(session.media)}` : '';
    this.hlsUrl = `${origin}:${s.hls_port}/cam_${this.cameraId}/index.m3u8${token}`;
    this.set('none', 'connecting');
    this.note('start');
    // HLS on the hidden video from the start (see the top of the file).
    this.startHls(this.hidden, gen);
    for (let i = 0; i < s.whep_tries; i++) {
      const video = this.shown;
      this.rtc = whep(this.whepUrl, video, s.whep_try_ms);
      try {
        const ms = await this.rtc.done;
        if (gen !== this.gen) return;
        this.note('webrtc-playing', { ms, try: i + 1 });
        this.stopHls();
        this.set('webrtc', 'playing');
        this.watch(gen);
        this.reportLatency(gen);
        return;
      } catch (e) {
        if (gen !== this.gen) return;
        this.note('webrtc-try-failed', { try: i + 1, why: e.message, certain: e instanceof Certain });
        this.stopWebrtc();
        video.srcObject = null;
        // A certain failure ends the try at once; a short pause avoids a
        // hot loop against a server that refuses.
        if (e instanceof Certain) await new Promise((ok) => this.later(ok, 300));
        if (gen !== this.gen) return;
      }
    }
    this.note('webrtc-failed');
    this.onHls(gen);
  }

  // Shows HLS once its hidden video plays.
  onHls(gen) {
    const show = () => {
      if (gen !== this.gen) return;
      if (this.hlsVideo && this.hlsVideo.classList.contains('standby')) this.swap();
      this.note('hls-shown');
      this.set('hls', 'playing');
      this.watch(gen);
      this.reportLatency(gen);
      this.later(() => this.retryWebrtc(gen), this.s.webrtc_retry_ms);
    };
    if (!this.hls) this.startHls(this.hidden, gen);
    if (this.hlsFirstFrame) show();
    else this.hlsOnFirst = show;
    this.later(() => {
      if (gen === this.gen && this.dataset.state !== 'playing') {
        this.set('none', 'failed');
        this.note('failed');
        this.later(() => gen === this.gen && this.start(), 2000);
      }
    }, 20000);
  }

  startHls(video, gen) {
    this.stopHls();
    this.hlsFirstFrame = false;
    this.hlsOnFirst = null;
    if (!window.Hls || !Hls.isSupported()) return;
    // MediaMTX checks the multivariant playlist only (its session covers the
    // rest); the header on every request is harmless.
    const auth = mediaAuth();
    const hls = new Hls({
      liveSyncDurationCount: 2, manifestLoadingMaxRetry: 30, manifestLoadingRetryDelay: 500,
      xhrSetup: (xhr) => { for (const [k, v] of Object.entries(auth)) xhr.setRequestHeader(k, v); },
    });
    this.hls = hls;
    this.hlsVideo = video;
    hls.on(Hls.Events.ERROR, (_, d) => {
      if (!d.fatal || gen !== this.gen || this.hls !== hls) return;
      this.note('hls-fatal', { details: d.details });
      // A fatal error: a new hls.js instance (recover the media error once).
      if (d.type === Hls.ErrorTypes.MEDIA_ERROR && !hls.recovered) { hls.recovered = true; hls.recoverMediaError(); return; }
      this.later(() => {
        if (gen !== this.gen || this.hls !== hls) return;
        const onShow = this.hlsOnFirst;
        const wasShown = this.dataset.protocol === 'hls';
        this.startHls(video, gen);
        if (wasShown || onShow) this.hlsOnFirst = onShow || (() => {});
      }, 1000);
    });
    video.requestVideoFrameCallback(() => {
      if (this.hls !== hls) return;
      this.hlsFirstFrame = true;
      this.note('hls-first-frame');
      if (this.hlsOnFirst) { const f = this.hlsOnFirst; this.hlsOnFirst = null; f(); }
    });
    hls.loadSource(this.hlsUrl);
    hls.attachMedia(video);
    video.play().catch(() => {});
  }

  // While on HLS: WebRTC on the hidden video; shown only once it plays.
  async retryWebrtc(gen) {
    if (gen !== this.gen || this.dataset.protocol !== 'hls') return;
    this.note('webrtc-retry');
    const video = this.hidden;
    const rtc = whep(this.whepUrl, video, this.s.whep_try_ms);
    try {
      await rtc.done;
      if (gen !== this.gen) { rtc.close(); return; }
      this.rtc = rtc;
      this.swap();
      this.shownSince = performance.now();
      this.stopHls();
      this.note('webrtc-back');
      this.set('webrtc', 'playing');
    } catch {
      rtc.close();
      video.srcObject = null;
      if (gen === this.gen) this.later(() => this.retryWebrtc(gen), this.s.webrtc_retry_ms);
    }
  }

  // Frozen video: no new frame on the shown video for stall_ms restarts the
  // player (after a MediaMTX restart too).
  watch(gen) {
    const now = performance.now();
    this.shownSince = now;
    for (const v of this.querySelectorAll('video')) {
      v.lastFrame = now;
      const onFrame = () => {
        if (gen !== this.gen) return;
        v.lastFrame = performance.now();
        v.requestVideoFrameCallback(onFrame);
      };
      v.requestVideoFrameCallback(onFrame);
    }
    const check = () => {
      if (gen !== this.gen) return;
      const last = Math.max(this.shown.lastFrame || 0, this.shownSince);
      if (!document.hidden && performance.now() - last > this.s.stall_ms) {
        this.note('stalled', { protocol: this.dataset.protocol });
        this.start();
        return;
      }
      this.later(check, 500);
    };
    this.later(check, 500);
  }

  // Latency: WebRTC from the receiver's jitter buffer, HLS from hls.js.
  async reportLatency(gen) {
    if (gen !== this.gen) return;
    let seconds = null;
    const protocol = this.dataset.protocol;
    if (protocol === 'webrtc' && this.rtc) {
      (await this.rtc.pc.getStats()).forEach((s) => {
        if (s.type === 'inbound-rtp' && s.kind === 'video' && s.jitterBufferEmittedCount) {
          seconds = s.jitterBufferDelay / s.jitterBufferEmittedCount;
        }
      });
    } else if (protocol === 'hls' && this.hls && Number.isFinite(this.hls.latency)) {
      seconds = this.hls.latency;
    }
    if (seconds !== null && seconds >= 0 && seconds <= 600) {
      this.latency = { protocol, seconds };
      api(`/api/cameras/${encodeURIComponent(this.cameraId)}/latency`, {
        method: 'POST', headers: { 'Content-Type': 'application/json' }, keepalive: true,
        body: JSON.stringify({ protocol, seconds }),
      }).catch(() => {});
    }
    this.later(() => this.reportLatency(gen), 10000);
  }
}

customElements.define('vms-player', VmsPlayer);
