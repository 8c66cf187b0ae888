//! The WebRTC media engine behind WHEP: one UDP socket (`webrtcLocalUDPAddress`), the
//! str0m state machine of every session, and the 25 fps clock that feeds them the live
//! fixture as Annex-B access units.
//!
//! The live fixture is looped aligned to the wall clock: at Unix time `t` every camera
//! shows frame `floor(t * fps) mod frames`, so the burned-in number is the wall clock's
//! seconds modulo the loop length. A session starts at the next keyframe (as a real
//! server does for a late joiner), and RTP timestamps are that same frame clock at
//! 90 kHz, with the frame's wall time given to str0m, whose RTCP sender reports then map
//! RTP time to NTP time (what lets a browser compute `estimatedPlayoutTimestamp`).

use crate::livemedia::Media;
use crate::log::{debug, info};
use crate::mp4::Fixture;
use crate::readers::WebRtcSession;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use str0m::change::SdpOffer;
use str0m::format::Codec;
use str0m::media::{Frequency, MediaKind, MediaTime, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc, RtcConfig};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

/// A session that has not connected this long after its answer is closed, as MediaMTX's
/// `webrtcHandshakeTimeout` (10 s) does.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What a session sends once connected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Feed {
    /// The live stream.
    Live,
    /// Nothing: ICE and DTLS succeed, no frame ever arrives (a black video).
    Nothing,
    /// The live stream, stopping for good this long after the first frame.
    FreezeAfter(Duration),
}

pub enum Command {
    Add(Box<NewSession>),
    /// Close a session by its secret (WHEP `DELETE`).
    Remove(String),
    /// A trickled remote candidate (WHEP `PATCH`).
    Candidate(String, Candidate),
}

pub struct NewSession {
    pub secret: String,
    /// What the session sends: the camera's own picture, or the shared one.
    pub media: Arc<Media>,
    pub rtc: Rtc,
    pub feed: Feed,
    /// Shared with the API and metrics (`/v3/webrtcsessions`).
    pub info: Arc<Mutex<WebRtcSession>>,
    /// Whether the path is still ready; the session closes when it is not.
    pub path_ready: Box<dyn Fn() -> bool + Send>,
}

/// The engine's handle: where the HTTP side sends sessions.
pub struct Engine {
    pub tx: mpsc::UnboundedSender<Command>,
    /// The address of the ICE candidate given to browsers.
    pub candidate: SocketAddr,
}

/// Installs str0m's crypto provider (openssl) once per process.
fn crypto() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| str0m::crypto::from_feature_flags().install_process_default());
}

impl Engine {
    /// Binds the UDP socket and starts the engine task; it ends when every `Engine`
    /// handle is dropped (the WebRTC listener closed). A configured address that cannot
    /// be bound (another sim holds `:8189`) falls back to a free loopback port.
    pub fn start(addr: &str, fixture: Arc<Fixture>) -> Result<Engine, String> {
        crypto();
        let real = if addr.starts_with(':') {
            format!("0.0.0.0{addr}")
        } else {
            addr.to_string()
        };
        let sock = match std::net::UdpSocket::bind(&real) {
            Ok(s) => s,
            Err(e) => {
                info!("[WebRTC] listen udp {addr}: {e}; mediamtx-sim uses a free port");
                std::net::UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?
            }
        };
        sock.set_nonblocking(true).map_err(|e| e.to_string())?;
        let mut local = sock.local_addr().map_err(|e| e.to_string())?;
        if local.ip().is_unspecified() {
            local.set_ip([127, 0, 0, 1].into());
        }
        let sock = UdpSocket::from_std(sock).map_err(|e| e.to_string())?;
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(sock, local, rx, fixture));
        Ok(Engine {
            tx,
            candidate: local,
        })
    }
}

/// A receive-only offer's H.264 payload type: packetization mode 1, constrained
/// baseline preferred (what the fixture is).
fn h264_pt(rtc: &mut Rtc, mid: Mid) -> Option<Pt> {
    let w = rtc.writer(mid)?;
    let mut best: Option<(u8, Pt)> = None;
    for p in w.payload_params() {
        let s = p.spec();
        if s.codec != Codec::H264 {
            continue;
        }
        let mode1 = s.format.packetization_mode == Some(1);
        let cb = s.format.profile_level_id.map(|x| x >> 16 == 0x42) == Some(true);
        let score = mode1 as u8 * 2 + cb as u8;
        if best.is_none_or(|(b, _)| score > b) {
            best = Some((score, p.pt()));
        }
    }
    best.map(|(_, pt)| pt)
}

/// Builds a session's `Rtc` from a browser's offer; returns it with the SDP answer.
pub fn accept(offer_sdp: &str, candidate: SocketAddr) -> Result<(Rtc, String), String> {
    crypto();
    let offer = SdpOffer::from_sdp_string(offer_sdp).map_err(|e| e.to_string())?;
    let mut rtc = RtcConfig::new()
        .set_ice_lite(true)
        .clear_codecs()
        .enable_h264(true)
        .build(Instant::now());
    let c = Candidate::host(candidate, "udp").map_err(|e| e.to_string())?;
    rtc.add_local_candidate(c);
    let answer = rtc
        .sdp_api()
        .accept_offer(offer)
        .map_err(|e| e.to_string())?;
    Ok((rtc, answer.to_sdp_string()))
}

struct Session {
    media: Arc<Media>,
    rtc: Rtc,
    feed: Feed,
    info: Arc<Mutex<WebRtcSession>>,
    path_ready: Box<dyn Fn() -> bool + Send>,
    created: Instant,
    connected: bool,
    video: Option<(Mid, Pt)>,
    /// The first frame sent (a keyframe), once sending started.
    first_frame: Option<Instant>,
    timeout: Instant,
}

impl Session {
    /// Runs str0m until it waits for input: sends its datagrams, notes its events.
    /// False when the session is over.
    fn drive(&mut self, sock: &UdpSocket) -> bool {
        loop {
            if !self.rtc.is_alive() {
                return false;
            }
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    self.timeout = t;
                    return true;
                }
                Ok(Output::Transmit(t)) => {
                    let n = t.contents.len() as u64;
                    // Loopback UDP does not block; a full buffer drops the datagram, as
                    // a congested network would.
                    let _ = sock.try_send_to(&t.contents, t.destination);
                    let mut i = self.info.lock().unwrap();
                    i.outbound_bytes += n;
                    i.outbound_packets += 1;
                }
                Ok(Output::Event(e)) => match e {
                    Event::Connected => {
                        self.connected = true;
                        self.info.lock().unwrap().established = true;
                    }
                    Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                        return false;
                    }
                    Event::MediaAdded(m) if m.kind == MediaKind::Video => {
                        self.video = h264_pt(&mut self.rtc, m.mid).map(|pt| (m.mid, pt));
                    }
                    _ => {}
                },
                Err(e) => {
                    debug!("[WebRTC] session error: {e}");
                    return false;
                }
            }
        }
    }

    fn input(&mut self, input: Input) -> bool {
        self.rtc.handle_input(input).is_ok()
    }
}

/// Wall time of frame `n` of the endless frame clock (frames since the Unix epoch).
fn frame_time(n: u64, fps: f64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs_f64(n as f64 / fps)
}

fn current_frame(fps: f64) -> u64 {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    (t.as_secs_f64() * fps) as u64
}

/// The `Instant` matching a wall time (for str0m's sender reports).
fn instant_of(t: SystemTime) -> Instant {
    let now_sys = SystemTime::now();
    let now = Instant::now();
    match now_sys.duration_since(t) {
        Ok(ago) => now.checked_sub(ago).unwrap_or(now),
        Err(e) => now + e.duration(),
    }
}

async fn run(
    sock: UdpSocket,
    local: SocketAddr,
    mut rx: mpsc::UnboundedReceiver<Command>,
    fx: Arc<Fixture>,
) {
    let fps = fx.fps();
    let frames = fx.samples.len() as u64;
    let ticks_per_frame = (90_000.0 / fps).round() as u64;
    let mut sessions: HashMap<String, Session> = HashMap::new();
    let mut last_frame = current_frame(fps);
    let mut buf = vec![0u8; 2000];
    loop {
        sessions.retain(|_, s| s.drive(&sock));
        if sessions.is_empty() {
            // Idle: no frame clock, wait for a session.
            last_frame = current_frame(fps);
        }
        let next_frame = if sessions.is_empty() {
            Instant::now() + Duration::from_secs(3600)
        } else {
            instant_of(frame_time(last_frame + 1, fps))
        };
        let wake = sessions
            .values()
            .map(|s| s.timeout)
            .chain(std::iter::once(next_frame))
            .min()
            .unwrap();
        tokio::select! {
            cmd = rx.recv() => match cmd {
                None => return,
                Some(Command::Add(n)) => {
                    let n = *n;
                    sessions.insert(n.secret, Session {
                        media: n.media,
                        rtc: n.rtc,
                        feed: n.feed,
                        info: n.info,
                        path_ready: n.path_ready,
                        created: Instant::now(),
                        connected: false,
                        video: None,
                        first_frame: None,
                        timeout: Instant::now(),
                    });
                }
                Some(Command::Remove(secret)) => {
                    if let Some(mut s) = sessions.remove(&secret) {
                        s.rtc.disconnect();
                        s.drive(&sock);
                    }
                }
                Some(Command::Candidate(secret, c)) => {
                    if let Some(s) = sessions.get_mut(&secret) {
                        s.rtc.add_remote_candidate(c);
                    }
                }
            },
            r = sock.recv_from(&mut buf) => {
                let Ok((n, source)) = r else { continue };
                let Ok(contents) = buf[..n].try_into() else { continue };
                let input = Input::Receive(Instant::now(), Receive {
                    proto: Protocol::Udp,
                    source,
                    destination: local,
                    contents,
                });
                if let Some((_, s)) = sessions.iter_mut().find(|(_, s)| s.rtc.accepts(&input)) {
                    let mut i = s.info.lock().unwrap();
                    i.inbound_bytes += n as u64;
                    i.remote = source.to_string();
                    drop(i);
                    if !s.input(input) {
                        s.rtc.disconnect();
                    }
                }
            }
            _ = tokio::time::sleep_until(wake.into()) => {
                let now = Instant::now();
                for s in sessions.values_mut() {
                    if s.timeout <= now && !s.input(Input::Timeout(now)) {
                        s.rtc.disconnect();
                    }
                    if !s.connected && now.duration_since(s.created) > HANDSHAKE_TIMEOUT {
                        info!("[WebRTC] [session] closed: deadline exceeded while waiting connection");
                        s.rtc.disconnect();
                    }
                }
                let cur = current_frame(fps);
                if cur > last_frame {
                    // At most one loop's worth after a long stall; usually one frame.
                    let from = (last_frame + 1).max(cur.saturating_sub(frames));
                    for f in from..=cur {
                        let idx = (f % frames) as usize;
                        let wall = instant_of(frame_time(f, fps));
                        let rtp = MediaTime::new(f * ticks_per_frame, Frequency::NINETY_KHZ);
                        for s in sessions.values_mut() {
                            feed(s, idx, wall, rtp, now);
                        }
                    }
                    last_frame = cur;
                }
                for s in sessions.values_mut() {
                    if !(s.path_ready)() || s.info.lock().unwrap().kicked {
                        s.rtc.disconnect();
                    }
                }
            }
        }
    }
}

fn feed(s: &mut Session, idx: usize, wall: Instant, rtp: MediaTime, now: Instant) {
    let Some((mid, pt)) = s.video.filter(|_| s.connected) else {
        return;
    };
    match s.feed {
        Feed::Nothing => return,
        Feed::FreezeAfter(d) if s.first_frame.is_some_and(|t| now.duration_since(t) >= d) => return,
        _ => {}
    }
    if s.first_frame.is_none() {
        if !s.media.fx.samples[idx].key {
            return;
        }
        s.first_frame = Some(now);
    }
    if let Some(w) = s.rtc.writer(mid) {
        if w.write(pt, wall, rtp, s.media.units[idx].clone()).is_ok() {
            s.info.lock().unwrap().frames_sent += 1;
        }
    }
}
