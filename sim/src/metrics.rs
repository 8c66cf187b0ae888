//! Metrics (docs/mediamtx.md, metrics): MediaMTX's own text format, no prefix, no HELP/TYPE, sorted
//! labels, `# Title` headers, unlabelled zero lines for empty lists.

use crate::auth;
use crate::http::{plain_404, query_map};
use crate::sim::Sim;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::Arc;

pub fn router(sim: Arc<Sim>) -> Router {
    Router::new().fallback(handle).with_state(sim)
}

async fn handle(
    State(sim): State<Arc<Sim>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if method == Method::OPTIONS && headers.contains_key("access-control-request-method") {
        return (
            axum::http::StatusCode::NO_CONTENT,
            [
                ("Access-Control-Allow-Methods", "OPTIONS, GET"),
                ("Access-Control-Allow-Headers", "Authorization"),
            ],
        )
            .into_response();
    }
    // Every request, unknown routes included, is the `metrics` action (docs/mediamtx.md §b2).
    let req = auth::Request {
        action: auth::Action::Metrics,
        path: String::new(),
        query: uri.query().unwrap_or("").to_string(),
        protocol: "",
        id: None,
        user_agent: String::new(),
        creds: auth::Credentials::from_http(&headers),
        ip: peer.ip(),
    };
    let author = format!("[metrics] [conn {peer}]");
    if let Err(refusal) = auth::check(&sim.conf(), &req, &author, None).await {
        return refusal.response();
    }
    if method != Method::GET || uri.path() != "/metrics" {
        return plain_404();
    }
    let q = query_map(uri.query());
    let body = render(
        &sim,
        q.get("type").map(String::as_str),
        q.get("path").map(String::as_str),
    );
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

fn labels(pairs: &[(&str, &str)]) -> String {
    let mut p = pairs.to_vec();
    p.sort_by_key(|(k, _)| *k);
    let inner: Vec<String> = p.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    format!("{{{}}}", inner.join(","))
}

/// Renders the metrics text; `kind` is the optional `type=` filter.
pub fn render(sim: &Sim, kind: Option<&str>, path_filter: Option<&str>) -> String {
    let conf = sim.conf();
    // A per-kind id filter (`path=`) alone selects its kind.
    let kind = kind.or(path_filter.map(|_| "paths"));
    let show = |k: &str| kind.is_none() || kind == Some(k);
    let mut o = String::new();
    if show("paths") {
        let paths: Vec<_> = sim
            .all_paths()
            .into_iter()
            .filter(|p| path_filter.is_none_or(|f| f == p.name))
            .collect();
        o.push_str("# Paths\n");
        if paths.is_empty() {
            o.push_str("paths 0\npaths_inbound_bytes 0\npaths_outbound_bytes 0\npaths_inbound_frames_in_error 0\n\n");
            o.push_str("# Paths (deprecated)\npaths_bytes_received 0\npaths_bytes_sent 0\npaths_readers 0\n\n");
        } else {
            let mut dep = String::new();
            for p in &paths {
                let j = serde_json::to_value(crate::api::path_json(sim, p)).unwrap();
                let state = if j["ready"] == true {
                    "ready"
                } else {
                    "notReady"
                };
                let l = labels(&[("name", &p.name), ("state", state)]);
                let inb = j["inboundBytes"].as_u64().unwrap_or(0);
                let outb = j["outboundBytes"].as_u64().unwrap_or(0);
                let nreaders = j["readers"].as_array().map(Vec::len).unwrap_or(0);
                let _ = writeln!(o, "paths{l} 1");
                if nreaders == 0 {
                    let rl = labels(&[("name", &p.name), ("readerType", ""), ("state", state)]);
                    let _ = writeln!(o, "paths_readers{rl} 0");
                } else {
                    let mut by_type = std::collections::BTreeMap::new();
                    for r in j["readers"].as_array().into_iter().flatten() {
                        *by_type
                            .entry(r["type"].as_str().unwrap_or("").to_string())
                            .or_insert(0) += 1;
                    }
                    for (t, n) in by_type {
                        let rl = labels(&[("name", &p.name), ("readerType", &t), ("state", state)]);
                        let _ = writeln!(o, "paths_readers{rl} {n}");
                    }
                }
                let _ = writeln!(o, "paths_inbound_bytes{l} {inb}");
                let _ = writeln!(o, "paths_outbound_bytes{l} {outb}");
                let _ = writeln!(o, "paths_inbound_frames_in_error{l} 0");
                let _ = writeln!(dep, "paths_bytes_received{l} {inb}");
                let _ = writeln!(dep, "paths_bytes_sent{l} {outb}");
            }
            o.push('\n');
            o.push_str("# Paths (deprecated)\n");
            o.push_str(&dep);
            o.push('\n');
        }
    }
    if conf.bool("hls") {
        let (sessions, muxers) = {
            let mut st = sim.state.lock().unwrap();
            (st.hls.session_rows(), st.hls.muxer_rows())
        };
        if show("hls_sessions") {
            o.push_str("# HLS sessions\n");
            if sessions.is_empty() {
                o.push_str("hls_sessions 0\nhls_sessions_outbound_bytes 0\n");
            }
            for (id, path, remote, out) in &sessions {
                let l = labels(&[("id", id), ("path", path), ("remoteAddr", remote)]);
                let _ = writeln!(o, "hls_sessions{l} 1\nhls_sessions_outbound_bytes{l} {out}");
            }
            o.push('\n');
        }
        if show("hls_muxers") {
            o.push_str("# HLS muxers\n");
            let mut dep = String::new();
            if muxers.is_empty() {
                o.push_str("hls_muxers 0\nhls_muxers_outbound_bytes 0\nhls_muxers_outbound_frames_discarded 0\n");
                dep.push_str("hls_muxers_bytes_sent 0\n");
            }
            for (name, out) in &muxers {
                let l = labels(&[("name", name)]);
                let _ = writeln!(o, "hls_muxers{l} 1\nhls_muxers_outbound_bytes{l} {out}\nhls_muxers_outbound_frames_discarded{l} 0");
                let _ = writeln!(dep, "hls_muxers_bytes_sent{l} {out}");
            }
            o.push_str("\n# HLS muxers (deprecated)\n");
            o.push_str(&dep);
            o.push('\n');
        }
    }
    if conf.bool("rtsp") {
        if show("rtsp_conns") {
            o.push_str("# RTSP connections\nrtsp_conns 0\nrtsp_conns_inbound_bytes 0\nrtsp_conns_outbound_bytes 0\n\n");
            o.push_str("# RTSP connections (deprecated)\nrtsp_conns_bytes_received 0\nrtsp_conns_bytes_sent 0\n\n");
        }
        if show("rtsp_sessions") {
            o.push_str("# RTSP sessions\nrtsp_sessions 0\n");
            for m in [
                "inbound_bytes",
                "inbound_rtp_packets",
                "inbound_rtp_packets_lost",
                "inbound_rtp_packets_in_error",
                "inbound_rtp_packets_jitter",
                "inbound_rtcp_packets",
                "inbound_rtcp_packets_in_error",
                "outbound_bytes",
                "outbound_rtp_packets",
                "outbound_rtp_packets_reported_lost",
                "outbound_rtp_packets_discarded",
                "outbound_rtcp_packets",
            ] {
                let _ = writeln!(o, "rtsp_sessions_{m} 0");
            }
            o.push_str("\n# RTSP sessions (deprecated)\n");
            for m in [
                "bytes_received",
                "bytes_sent",
                "rtp_packets_received",
                "rtp_packets_sent",
                "rtp_packets_lost",
                "rtp_packets_in_error",
                "rtp_packets_jitter",
                "rtcp_packets_received",
                "rtcp_packets_sent",
                "rtcp_packets_in_error",
            ] {
                let _ = writeln!(o, "rtsp_sessions_{m} 0");
            }
            o.push('\n');
        }
    }
    if conf.bool("rtmp") && show("rtmp_conns") {
        o.push_str("# RTMP connections\nrtmp_conns 0\nrtmp_conns_inbound_bytes 0\nrtmp_conns_outbound_bytes 0\nrtmp_conns_outbound_frames_discarded 0\n\n");
        o.push_str("# RTMP connections (deprecated)\nrtmp_conns_bytes_received 0\nrtmp_conns_bytes_sent 0\n\n");
    }
    if conf.bool("srt") && show("srt_conns") {
        o.push_str("# SRT connections\nsrt_conns 0\n\n");
    }
    if conf.bool("webrtc") && show("webrtc_sessions") {
        let sessions: Vec<_> = sim
            .state
            .lock()
            .unwrap()
            .webrtc
            .live()
            .iter()
            .map(|s| s.lock().unwrap().json())
            .collect();
        let metrics = [
            ("inbound_bytes", "inboundBytes"),
            ("inbound_rtp_packets", "inboundRTPPackets"),
            ("inbound_rtp_packets_lost", "inboundRTPPacketsLost"),
            ("inbound_rtp_packets_jitter", "inboundRTPPacketsJitter"),
            ("inbound_rtcp_packets", "inboundRTCPPackets"),
            ("outbound_bytes", "outboundBytes"),
            ("outbound_rtp_packets", "outboundRTPPackets"),
            ("outbound_rtcp_packets", "outboundRTCPPackets"),
            ("outbound_frames_discarded", "outboundFramesDiscarded"),
        ];
        let deprecated = [
            ("bytes_received", "bytesReceived"),
            ("bytes_sent", "bytesSent"),
            ("rtp_packets_received", "rtpPacketsReceived"),
            ("rtp_packets_sent", "rtpPacketsSent"),
            ("rtp_packets_lost", "rtpPacketsLost"),
            ("rtp_packets_jitter", "rtpPacketsJitter"),
            ("rtcp_packets_received", "rtcpPacketsReceived"),
            ("rtcp_packets_sent", "rtcpPacketsSent"),
        ];
        let block = |o: &mut String, rows: &[(&str, &str)], head: bool| {
            if sessions.is_empty() {
                if head {
                    o.push_str("webrtc_sessions 0\n");
                }
                for (m, _) in rows {
                    let _ = writeln!(o, "webrtc_sessions_{m} 0");
                }
                return;
            }
            for s in &sessions {
                let l = labels(&[
                    ("id", s["id"].as_str().unwrap_or("")),
                    ("path", s["path"].as_str().unwrap_or("")),
                    ("remoteAddr", s["remoteAddr"].as_str().unwrap_or("")),
                    ("state", "read"),
                ]);
                if head {
                    let _ = writeln!(o, "webrtc_sessions{l} 1");
                }
                for (m, k) in rows {
                    let _ = writeln!(
                        o,
                        "webrtc_sessions_{m}{l} {}",
                        s[*k].as_f64().unwrap_or(0.0)
                    );
                }
            }
        };
        o.push_str("# WebRTC sessions\n");
        block(&mut o, &metrics, true);
        o.push_str("\n# WebRTC sessions (deprecated)\n");
        block(&mut o, &deprecated, false);
        o.push('\n');
    }
    if conf.bool("moq") && show("moq_sessions") {
        o.push_str("# MoQ sessions\nmoq_sessions 0\nmoq_sessions_inbound_bytes 0\nmoq_sessions_outbound_bytes 0\n\n");
    }
    o
}
