//! The readers' registries: HLS muxers and sessions and WebRTC sessions, as the control
//! API, metrics and the HLS and WebRTC servers see them.

use crate::config::Conf;
use crate::http::go_time;
use chrono::{DateTime, Local};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// A reader session expires this long after its last request.
const SESSION_TTL: Duration = Duration::from_secs(30);

pub struct Muxer {
    pub path: String,
    /// Created by `hlsAlwaysRemux`: never closed for inactivity.
    pub always: bool,
    pub created: DateTime<Local>,
    pub last_request: DateTime<Local>,
    pub last_at: Instant,
    pub outbound: u64,
}

pub struct Session {
    pub id: String,
    pub path: String,
    pub created: DateTime<Local>,
    pub last_at: Instant,
    pub remote: String,
    pub query: String,
    pub user_agent: String,
    pub outbound: u64,
}

#[derive(Default)]
pub struct HlsState {
    pub muxers: Vec<Muxer>,
    pub sessions: Vec<Session>,
    pub close_after: Option<Duration>,
}

impl HlsState {
    pub fn purge(&mut self) {
        let now = Instant::now();
        self.sessions
            .retain(|s| now.duration_since(s.last_at) < SESSION_TTL);
        if let Some(ca) = self.close_after {
            self.muxers
                .retain(|m| m.always || now.duration_since(m.last_at) < ca);
        }
    }

    /// `hlsAlwaysRemux: yes`: a muxer exists as soon as the path is ready.
    pub fn always_remux(&mut self, name: &str) {
        if !self.muxers.iter().any(|m| m.path == name) {
            let now = Local::now();
            self.muxers.push(Muxer {
                path: name.to_string(),
                always: true,
                created: now,
                last_request: now,
                last_at: Instant::now(),
                outbound: 0,
            });
        }
    }

    /// The path became not ready or was closed: its muxer and readers go away.
    pub fn path_gone(&mut self, name: &str) {
        self.muxers.retain(|m| m.path != name);
        self.sessions.retain(|s| s.path != name);
    }

    /// (readers of a path as API JSON, bytes sent to them).
    pub fn readers(&mut self, name: &str) -> (Vec<Value>, u64) {
        self.purge();
        let mut out = 0;
        let readers = self
            .sessions
            .iter()
            .filter(|s| s.path == name)
            .map(|s| {
                out += s.outbound;
                json!({"type": "hlsSession", "id": s.id})
            })
            .collect();
        (readers, out)
    }

    pub fn muxers_json(&mut self) -> Vec<Value> {
        self.purge();
        self.muxers
            .iter()
            .map(|m| {
                json!({"path": m.path, "created": go_time(&m.created),
                "lastRequest": go_time(&m.last_request), "outboundBytes": m.outbound,
                "outboundFramesDiscarded": 0, "bytesSent": m.outbound})
            })
            .collect()
    }

    pub fn sessions_json(&mut self) -> Vec<Value> {
        self.purge();
        self.sessions
            .iter()
            .map(|s| {
                json!({"id": s.id, "created": go_time(&s.created), "remoteAddr": s.remote,
                "path": s.path, "query": s.query, "user": "", "userAgent": s.user_agent,
                "isCDN": false, "outboundBytes": s.outbound})
            })
            .collect()
    }

    pub fn kick(&mut self, id: &str) -> bool {
        let n = self.sessions.len();
        self.sessions.retain(|s| s.id != id);
        n != self.sessions.len()
    }

    /// (id, path, remoteAddr, outbound) of live sessions, for metrics.
    pub fn session_rows(&mut self) -> Vec<(String, String, String, u64)> {
        self.purge();
        self.sessions
            .iter()
            .map(|s| (s.id.clone(), s.path.clone(), s.remote.clone(), s.outbound))
            .collect()
    }

    pub fn muxer_rows(&mut self) -> Vec<(String, u64)> {
        self.purge();
        self.muxers
            .iter()
            .map(|m| (m.path.clone(), m.outbound))
            .collect()
    }
}

/// gohlslib checks the segment count only when a muxer is created (docs/mediamtx.md, HLS): the
/// config loads, and HLS then never works.
pub fn muxer_config_error(conf: &Conf) -> Option<String> {
    let count = conf
        .global
        .get("hlsSegmentCount")
        .and_then(Value::as_u64)
        .unwrap_or(7);
    if conf.str("hlsVariant") == "lowLatency" {
        (count < 7).then(|| "Low-Latency HLS requires at least 7 segments".to_string())
    } else {
        (count < 3).then(|| "The minimum number of HLS segments is 3".to_string())
    }
}

/// A WHEP session as `/v3/webrtcsessions` and metrics show it. The media engine owns
/// it while the session lives and updates the counters; the registry only keeps a weak
/// reference, so a closed session disappears from every list.
#[derive(Debug, Default)]
pub struct WebRtcSession {
    pub id: String,
    /// The secret of the session URL (`Location: /NAME/whep/SECRET`).
    pub secret: String,
    pub created: Option<DateTime<Local>>,
    pub remote: String,
    pub path: String,
    pub query: String,
    pub user_agent: String,
    pub established: bool,
    pub local_candidate: String,
    pub remote_candidate: String,
    pub inbound_bytes: u64,
    pub outbound_bytes: u64,
    pub outbound_packets: u64,
    pub frames_sent: u64,
    /// Kicked through the API: the engine closes it.
    pub kicked: bool,
}

impl WebRtcSession {
    pub fn json(&self) -> Value {
        json!({"id": self.id, "created": self.created.as_ref().map(go_time),
            "remoteAddr": self.remote, "peerConnectionEstablished": self.established,
            "localCandidate": self.local_candidate, "remoteCandidate": self.remote_candidate,
            "state": "read", "path": self.path, "query": self.query, "user": "",
            "userAgent": self.user_agent, "inboundBytes": self.inbound_bytes,
            "inboundRTPPackets": 0, "inboundRTPPacketsLost": 0, "inboundRTPPacketsJitter": 0.0,
            "inboundRTCPPackets": 0, "outboundBytes": self.outbound_bytes,
            "outboundRTPPackets": self.outbound_packets, "outboundRTCPPackets": 0,
            "outboundFramesDiscarded": 0, "bytesReceived": self.inbound_bytes,
            "bytesSent": self.outbound_bytes, "rtpPacketsReceived": 0,
            "rtpPacketsSent": self.outbound_packets, "rtpPacketsLost": 0,
            "rtpPacketsJitter": 0.0, "rtcpPacketsReceived": 0, "rtcpPacketsSent": 0})
    }
}

/// Live WHEP sessions, in creation order.
#[derive(Default)]
pub struct WebRtcSessions {
    list: Vec<Weak<Mutex<WebRtcSession>>>,
}

impl WebRtcSessions {
    pub fn add(&mut self, s: &Arc<Mutex<WebRtcSession>>) {
        self.list.retain(|w| w.strong_count() > 0);
        self.list.push(Arc::downgrade(s));
    }

    pub fn live(&mut self) -> Vec<Arc<Mutex<WebRtcSession>>> {
        self.list.retain(|w| w.strong_count() > 0);
        self.list.iter().filter_map(Weak::upgrade).collect()
    }

    pub fn find(
        &mut self,
        f: impl Fn(&WebRtcSession) -> bool,
    ) -> Option<Arc<Mutex<WebRtcSession>>> {
        self.live().into_iter().find(|s| f(&s.lock().unwrap()))
    }

    /// Sessions reading a path: (readers as API JSON, bytes sent to them).
    pub fn readers(&mut self, name: &str) -> (Vec<Value>, u64) {
        let mut out = 0;
        let mut v = Vec::new();
        for s in self.live() {
            let s = s.lock().unwrap();
            if s.path == name {
                out += s.outbound_bytes;
                v.push(json!({"type": "webRTCSession", "id": s.id}));
            }
        }
        (v, out)
    }
}
