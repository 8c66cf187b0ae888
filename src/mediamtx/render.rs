//! Renders MediaMTX's `mediamtx.yml` from our configuration.
//!
//! The original design's YAML (docs/design.md §1.2) is invalid for MediaMTX v1.20.1 in several places
//! (global keys under `paths:`, the ICE server shape, five low-latency HLS
//! segments, a recordPath without `%path`/`%f`); docs/mediamtx.md §l says
//! how. What we render keeps the design's intent with keys MediaMTX accepts:
//!
//! * API, metrics and playback on loopback only; RTMP, SRT and MoQ off (MoQ
//!   would also write `auto.key`/`auto.crt` into the working directory).
//! * HLS as standard fMP4 HLS (2 s x 5 segments, CORS `*`), WebRTC with the
//!   configured ICE servers in the current `webrtcICEServers2` shape.
//! * One path `cam_{id}` per camera: always on, fMP4 recording in 60 s
//!   segments into `<root>/%path/%Y-%m-%d/%H-%M-%S-%f` (per-camera
//!   directories keep the inotify watch and retention per camera).
//! * `recordDeleteAfter: 0s`: the daemon deletes footage (retention,
//!   eviction, holds: `src/storage/`), MediaMTX never does.
//!
//! The output is deterministic (same input, same bytes), which the config
//! writer relies on to skip writes that would change nothing.

use std::fmt::Write as _;

use crate::config::{Camera, Config, Span};

/// The per-path settings of one camera, as (key, YAML value) pairs in the
/// order they are written. The same pairs, as JSON, are what the recovery
/// ladder sends to `/v3/config/paths/replace`, so a re-created path is
/// exactly the one in the file.
pub fn path_settings(config: &Config, camera: &Camera) -> Vec<(&'static str, Value)> {
    let mut v = vec![
        ("source", Value::Str(camera.url.clone())),
        ("sourceOnDemand", Value::Bool(false)),
    ];
    if let Some(t) = &camera.rtsp_transport {
        v.push(("rtspTransport", Value::Str(t.clone())));
    }
    v.extend(record_settings(config, true));
    v
}

/// Recording keys, shared by `pathDefaults` (record off) and every camera.
fn record_settings(config: &Config, record: bool) -> Vec<(&'static str, Value)> {
    vec![
        ("record", Value::Bool(record)),
        ("recordPath", Value::Str(record_path(config))),
        ("recordFormat", Value::Str("fmp4".into())),
        (
            "recordPartDuration",
            Value::Str(config.recording.part_duration.to_go()),
        ),
        (
            "recordSegmentDuration",
            Value::Str(config.recording.segment_duration.to_go()),
        ),
        (
            "recordDeleteAfter",
            Value::Str(record_delete_after(config).to_go()),
        ),
    ]
}

/// `<root>/%path/%Y-%m-%d/%H-%M-%S-%f`: contains `%path`, all six time
/// fields and `%f` as docs/mediamtx.md §d requires with playback on.
pub fn record_path(config: &Config) -> String {
    let root = config.recording.path.display().to_string();
    let root = root.trim_end_matches('/');
    format!("{root}/%path/%Y-%m-%d/%H-%M-%S-%f")
}

/// MediaMTX's own deletion is off (`0s`): the daemon owns retention
/// (`src/storage/`), so that nothing is deleted before it is backed up or
/// while it is held, and a disk that fills is handled by eviction, not by
/// an age rule alone.
pub fn record_delete_after(_config: &Config) -> Span {
    Span::secs(0)
}

/// With HTTPS on (`[api] tls_cert`), MediaMTX serves HLS and WebRTC's
/// signalling with the same certificate: a page that came over HTTPS may
/// not fetch video over plain HTTP (mixed content).
fn encryption(y: &mut String, server: &str, config: &Config) {
    let Some((cert, key)) = config.api.tls() else {
        return;
    };
    let path = |p: &std::path::Path| Value::Str(p.display().to_string()).to_yaml();
    let _ = writeln!(y, "{server}Encryption: true");
    let _ = writeln!(y, "{server}ServerKey: {}", path(key));
    let _ = writeln!(y, "{server}ServerCert: {}", path(cert));
}

/// A YAML scalar or list as we emit it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Bool(bool),
    Int(u64),
    StrList(Vec<String>),
}

impl Value {
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Str(s) => serde_json::Value::String(s.clone()),
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Int(n) => serde_json::Value::from(*n),
            Value::StrList(l) => serde_json::Value::from(l.clone()),
        }
    }

    fn to_yaml(&self) -> String {
        match self {
            Value::Str(s) => quote(s),
            Value::Bool(b) => b.to_string(),
            Value::Int(n) => n.to_string(),
            Value::StrList(l) => {
                let items: Vec<String> = l.iter().map(|s| quote(s)).collect();
                format!("[{}]", items.join(", "))
            }
        }
    }
}

/// The JSON body for `/v3/config/paths/replace/cam_{id}`.
pub fn path_json(config: &Config, camera: &Camera) -> serde_json::Value {
    let map = path_settings(config, camera)
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_json()))
        .collect::<serde_json::Map<_, _>>();
    serde_json::Value::Object(map)
}

/// A YAML double-quoted string: safe for URLs with `:`, `#`, `@`, `%`.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The whole `mediamtx.yml`.
pub fn render(config: &Config) -> String {
    let m = &config.mediamtx;
    let mut y = String::new();
    let kv = |y: &mut String, indent: usize, key: &str, value: Value| {
        let _ = writeln!(y, "{:indent$}{key}: {}", "", value.to_yaml());
    };
    y.push_str(
        "# Generated by vms-supervisor from its own configuration (vms.toml).\n\
         # Do not edit: every change is overwritten. Edit /etc/vms/vms.toml instead.\n\n",
    );
    y.push_str("# Logs go to stdout, which vms-supervisor reads, rate-limits and forwards.\n");
    kv(&mut y, 0, "logLevel", Value::Str("info".into()));
    kv(
        &mut y,
        0,
        "logDestinations",
        Value::StrList(vec!["stdout".into()]),
    );
    kv(&mut y, 0, "logStructured", Value::Bool(false));
    kv(&mut y, 0, "readTimeout", Value::Str(m.read_timeout.to_go()));
    kv(&mut y, 0, "writeTimeout", Value::Str("10s".into()));

    y.push_str(
        "\n# Every reader, the API and playback are authorized by vms-supervisor\n\
         # (users, roles, camera lists, the audit trail). Metrics (counters, no\n\
         # video) stay open to this box's Prometheus.\n",
    );
    kv(&mut y, 0, "authMethod", Value::Str("http".into()));
    kv(
        &mut y,
        0,
        "authHTTPAddress",
        Value::Str(format!(
            "http://{}/internal/mediamtx/auth",
            crate::config::connect_addr(config.api.listen)
        )),
    );
    y.push_str("authHTTPExclude:\n  - action: metrics\n");

    y.push_str("\n# Control API, metrics and playback: this box only.\n");
    kv(&mut y, 0, "api", Value::Bool(true));
    kv(
        &mut y,
        0,
        "apiAddress",
        Value::Str(m.api_address.to_string()),
    );
    kv(&mut y, 0, "metrics", Value::Bool(true));
    kv(
        &mut y,
        0,
        "metricsAddress",
        Value::Str(m.metrics_address.to_string()),
    );
    kv(&mut y, 0, "pprof", Value::Bool(false));
    kv(&mut y, 0, "playback", Value::Bool(true));
    kv(
        &mut y,
        0,
        "playbackAddress",
        Value::Str(m.playback_address.to_string()),
    );

    y.push_str(
        "\n# RTSP re-streaming for other clients (off unless [mediamtx] rtsp_address\n\
         # is set; its readers are authorized like every other); RTMP, SRT and MoQ\n\
         # are not used.\n",
    );
    kv(&mut y, 0, "rtsp", Value::Bool(!m.rtsp_address.is_empty()));
    if !m.rtsp_address.is_empty() {
        kv(&mut y, 0, "rtspAddress", Value::Str(m.rtsp_address.clone()));
    }
    kv(&mut y, 0, "rtmp", Value::Bool(false));
    kv(&mut y, 0, "srt", Value::Bool(false));
    kv(&mut y, 0, "moq", Value::Bool(false));

    y.push_str("\n# HLS: the live fallback (standard fMP4 HLS, 4-6 s latency).\n");
    kv(&mut y, 0, "hls", Value::Bool(true));
    kv(&mut y, 0, "hlsAddress", Value::Str(m.hls_address.clone()));
    encryption(&mut y, "hls", config);
    kv(
        &mut y,
        0,
        "hlsAllowOrigins",
        Value::StrList(m.allow_origins.clone()),
    );
    kv(&mut y, 0, "hlsAlwaysRemux", Value::Bool(false));
    kv(
        &mut y,
        0,
        "hlsVariant",
        Value::Str(m.hls_variant.as_mediamtx().into()),
    );
    kv(
        &mut y,
        0,
        "hlsSegmentCount",
        Value::Int(u64::from(m.hls_segment_count)),
    );
    kv(
        &mut y,
        0,
        "hlsSegmentDuration",
        Value::Str(m.hls_segment_duration.to_go()),
    );

    y.push_str("\n# WebRTC: the primary live protocol.\n");
    kv(&mut y, 0, "webrtc", Value::Bool(true));
    kv(
        &mut y,
        0,
        "webrtcAddress",
        Value::Str(m.webrtc_address.clone()),
    );
    encryption(&mut y, "webrtc", config);
    kv(
        &mut y,
        0,
        "webrtcAllowOrigins",
        Value::StrList(m.allow_origins.clone()),
    );
    kv(
        &mut y,
        0,
        "webrtcLocalUDPAddress",
        Value::Str(m.webrtc_local_udp_address.clone()),
    );
    if m.ice_servers.is_empty() {
        y.push_str("webrtcICEServers2: []\n");
    } else {
        y.push_str("webrtcICEServers2:\n");
        for ice in &m.ice_servers {
            let _ = writeln!(y, "  - url: {}", quote(&ice.url));
            if !ice.username.is_empty() {
                let _ = writeln!(y, "    username: {}", quote(&ice.username));
                let _ = writeln!(y, "    password: {}", quote(&ice.password));
            }
        }
    }

    y.push_str("\n# Defaults for every path: valid recording settings, recording off.\n");
    y.push_str("pathDefaults:\n");
    for (k, v) in record_settings(config, false) {
        kv(&mut y, 2, k, v);
    }

    y.push_str("\n# One path per camera, always on, recorded 24/7.\n");
    if config.cameras.is_empty() {
        y.push_str("paths: {}\n");
    } else {
        y.push_str("paths:\n");
        let mut cameras: Vec<&Camera> = config.cameras.iter().collect();
        cameras.sort_by_key(|c| c.id);
        for cam in cameras {
            // A comment ends at any line break (\n, \r, and the others YAML
            // knows): no character of a name may end it early.
            let name: String = cam
                .name
                .chars()
                .map(|c| {
                    if c.is_control() || matches!(c, '\u{85}' | '\u{2028}' | '\u{2029}') {
                        ' '
                    } else {
                        c
                    }
                })
                .collect();
            let _ = writeln!(y, "  # {name}");
            let _ = writeln!(y, "  {}:", cam.path_name());
            for (k, v) in path_settings(config, cam) {
                kv(&mut y, 4, k, v);
            }
        }
    }
    y
}
