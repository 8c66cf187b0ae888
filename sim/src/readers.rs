//! The readers' registries: HLS muxers and sessions, as the control API, metrics and
//! the HLS server see them.

use crate::config::Conf;
use crate::http::go_time;
use chrono::{DateTime, Local};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// A reader session expires this long after its last request.
const SESSION_TTL: Duration = Duration::from_secs(30);

pub struct Muxer {
    pub path: String,
    /// Created by `hlsAlwaysRemux`: never closed for inactivity.
    pub always: bool,
    pub created: DateTime<Local>,
    pub created_at: Instant,
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
                created_at: Instant::now(),
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

/// gohlslib checks the segment count only when a muxer is created (ADDENDA.md 4): the
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
