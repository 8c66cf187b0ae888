//! `/etc/vms/vms.toml`: parsing, defaults and validation.
//!
//! Loading happens in two steps, as in ntpd-rs: serde parses the text strictly
//! (unknown keys are errors, every section has named defaults), then
//! [`validate`] rejects what parses but is wrong (duplicate camera ids, a URL
//! that is not a stream, a zero duration, an unknown time zone, a directory the
//! daemon cannot write). Both steps report the offending key in the same
//! dotted form, e.g. `cameras[2].url`, so an operator can find it.
//!
//! Only a validated [`Config`] reaches the rest of the program. Secrets are
//! read from files or the environment during loading and kept in
//! [`Secret`], which never prints itself.

mod units;

use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use units::{Bytes, Secret, Span};

/// Where the package installs the configuration.
pub const DEFAULT_PATH: &str = "/etc/vms/vms.toml";

/// The demo configuration embedded in the binary (`vms-supervisor run --demo`).
pub const DEMO_TOML: &str = include_str!("../../etc/demo.toml");

/// A configuration problem, always tied to a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct ConfigError {
    /// Dotted key, e.g. `cameras[2].url` or `monitor.probe_timeout`. For a
    /// problem with the file itself (unreadable, not TOML), the file name.
    pub key: String,
    pub message: String,
}

impl ConfigError {
    /// Credentials of any URL quoted in the message are masked here, so no
    /// error about a camera can carry its password anywhere.
    fn new(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError {
            key: key.into(),
            message: scrub_credentials(&message.into()),
        }
    }
}

/// The whole file. Every section is optional; a file with only `[[cameras]]`
/// is valid and takes the defaults of docs/design.md for everything else.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub general: General,
    pub mediamtx: Mediamtx,
    pub recording: Recording,
    pub monitor: Monitor,
    pub storage: Storage,
    pub api: Api,
    pub access: Access,
    pub state: State,
    pub alerts: Alerts,
    pub backup: Backup,
    pub cameras: Vec<Camera>,
    /// Filled by [`validate`] from files or the environment; never in the TOML.
    #[serde(skip)]
    pub secrets: Secrets,
}

/// `[general]`: facts about this box.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct General {
    /// A short name for the box, used in alerts and as the `box` label an
    /// operator can add when one Prometheus scrapes many boxes.
    pub box_name: String,
    /// Where the box is (a school, a health post, a square): named in every
    /// alert text beside the box, and the `site` label the box's Prometheus
    /// agent adds for the central site. Empty: a single box.
    pub site: String,
    /// IANA time zone for alert texts, file names and the dashboard.
    pub timezone: String,
    /// Language of operator-facing texts: `pt-BR` or `en`.
    pub language: Language,
}

impl Default for General {
    fn default() -> Self {
        General {
            box_name: default_box_name(),
            site: String::new(),
            timezone: "America/Sao_Paulo".into(),
            language: Language::PtBr,
        }
    }
}

fn default_box_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "nvr".into())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Language {
    #[serde(rename = "pt-BR")]
    PtBr,
    #[serde(rename = "en")]
    En,
}

/// `[mediamtx]`: the MediaMTX process the daemon owns and the listeners it
/// opens. API, metrics and playback are for this box only and stay on
/// loopback; HLS, WebRTC and RTSP serve viewers on the network.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Mediamtx {
    /// The MediaMTX executable. A bare name is looked up beside
    /// `vms-supervisor` and then in `PATH`.
    pub binary: PathBuf,
    pub api_address: SocketAddr,
    pub metrics_address: SocketAddr,
    pub playback_address: SocketAddr,
    pub hls_address: String,
    pub webrtc_address: String,
    pub webrtc_local_udp_address: String,
    pub rtsp_address: String,
    /// ICE servers handed to browsers for WebRTC (the public STUN server of docs/design.md §1.2).
    pub ice_servers: Vec<IceServer>,
    /// Allowed CORS origins for HLS and WebRTC (docs/design.md §1.2 allows any).
    pub allow_origins: Vec<String>,
    pub hls_segment_duration: Span,
    pub hls_segment_count: u32,
    /// `fmp4` (the standard HLS of docs/design.md §1.2, 4-6 s latency) or `mpegts`. Low-latency
    /// HLS needs at least 7 segments, see docs/mediamtx.md §l.4.
    pub hls_variant: HlsVariant,
    /// MediaMTX drops a camera this long after its last packet.
    pub read_timeout: Span,
    /// How long MediaMTX may take to answer `/v3/info` after a start.
    pub startup_timeout: Span,
    /// Graceful stop budget (SIGTERM, then SIGKILL after this).
    pub stop_timeout: Span,
    /// First restart delay after an unexpected exit; doubles up to `restart_max_delay`.
    pub restart_delay: Span,
    pub restart_max_delay: Span,
    /// A run this long resets the restart delay.
    pub healthy_after: Span,
    /// More than `storm_restarts` restarts within `storm_window` is a restart
    /// storm: one Critical incident, and restarts slow to `restart_max_delay`.
    pub storm_restarts: u32,
    pub storm_window: Span,
    /// API probes that may fail in a row before MediaMTX is declared hung.
    pub hang_probes: u32,
    /// Restart MediaMTX when its memory (RSS) stays above this for
    /// `memory_limit_for`. `"0"` disables the watchdog.
    pub memory_limit: Bytes,
    pub memory_limit_for: Span,
    /// At most this many log lines per second are forwarded from MediaMTX; the
    /// rest are counted and summarised.
    pub log_lines_per_second: u32,
}

impl Default for Mediamtx {
    fn default() -> Self {
        Mediamtx {
            binary: PathBuf::from("/usr/local/bin/mediamtx"),
            api_address: SocketAddr::from(([127, 0, 0, 1], 9997)),
            metrics_address: SocketAddr::from(([127, 0, 0, 1], 9998)),
            playback_address: SocketAddr::from(([127, 0, 0, 1], 9996)),
            hls_address: "127.0.0.1:8888".into(),
            webrtc_address: "127.0.0.1:8889".into(),
            webrtc_local_udp_address: "127.0.0.1:8189".into(),
            rtsp_address: String::new(),
            ice_servers: vec![IceServer {
                url: "stun:stun.l.google.com:19302".into(),
                username: String::new(),
                password: String::new(),
            }],
            allow_origins: vec!["*".into()],
            hls_segment_duration: Span::secs(2),
            hls_segment_count: 5,
            hls_variant: HlsVariant::Fmp4,
            read_timeout: Span::secs(10),
            startup_timeout: Span::secs(15),
            stop_timeout: Span::secs(10),
            restart_delay: Span::secs(1),
            restart_max_delay: Span::secs(30),
            healthy_after: Span::secs(60),
            storm_restarts: 5,
            storm_window: Span::secs(300),
            hang_probes: 3,
            memory_limit: Bytes(2 << 30),
            memory_limit_for: Span::secs(120),
            log_lines_per_second: 20,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct IceServer {
    pub url: String,
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum HlsVariant {
    Fmp4,
    Mpegts,
    LowLatency,
}

impl HlsVariant {
    pub fn as_mediamtx(self) -> &'static str {
        match self {
            HlsVariant::Fmp4 => "fmp4",
            HlsVariant::Mpegts => "mpegts",
            HlsVariant::LowLatency => "lowLatency",
        }
    }
}

/// `[recording]`: 24/7 fMP4 recording of every camera.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Recording {
    /// Root of the recordings tree; each camera records into
    /// `<path>/cam_<id>/<YYYY-MM-DD>/<HH-MM-SS-micros>.mp4`.
    pub path: PathBuf,
    pub segment_duration: Span,
    /// MediaMTX appends one part this often; the stall detector relies on it.
    pub part_duration: Span,
    pub retention_days: u32,
}

impl Default for Recording {
    fn default() -> Self {
        Recording {
            path: PathBuf::from("/var/lib/vms/recordings"),
            segment_duration: Span::secs(60),
            part_duration: Span::secs(1),
            retention_days: 90,
        }
    }
}

/// `[monitor]`: the health checks and the recovery ladder (docs/design.md §3, §4:
/// "Monitoramento Contínuo" and "Ações de Recuperação").
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Monitor {
    /// The full check of every camera (docs/design.md §3). Events (inotify, MediaMTX log
    /// lines, the fast API poll) are acted on at once; this is the floor.
    pub interval: Span,
    /// One `/v3/paths/list` call for all cameras this often.
    pub api_poll_interval: Span,
    /// Timeout of every call to the MediaMTX API.
    pub probe_timeout: Span,
    /// No segment data written for this long while the stream is available
    /// is a recording stall.
    pub stall_after: Span,
    /// The outer bound of docs/design.md §3.2: no new segment data for this long is a
    /// stopped recording whatever the stream says.
    pub recording_stale: Span,
    /// Level 1: wait between removing and re-creating the path.
    pub recovery_remove_wait: Span,
    /// Level 1: wait after re-creating the path before verifying.
    pub recovery_verify_wait: Span,
    /// Level 2: wait after level 1 before checking the recording again.
    pub recording_recheck_wait: Span,
    /// Level 3: consecutive failed recoveries that mark a camera offline.
    pub failures_to_offline: u32,
    /// No decisions for this long after a start, restart or config change.
    pub grace_period: Span,
}

impl Default for Monitor {
    fn default() -> Self {
        Monitor {
            interval: Span::secs(30),
            api_poll_interval: Span::secs(1),
            probe_timeout: Span::secs(3),
            stall_after: Span::secs(6),
            recording_stale: Span::secs(120),
            recovery_remove_wait: Span::secs(2),
            recovery_verify_wait: Span::secs(10),
            recording_recheck_wait: Span::secs(10),
            failures_to_offline: 3,
            grace_period: Span::secs(15),
        }
    }
}

/// `[storage]`: disk thresholds, the free-space floor and retention runs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Storage {
    pub disk_warning_percent: u8,
    pub disk_critical_percent: u8,
    /// A fixed free-space floor; unset: the larger of `min_free_percent` of
    /// the disk and one hour of the measured write rate of all cameras.
    pub min_free: Option<Bytes>,
    /// The free-space floor as a share of the disk (default 5).
    pub min_free_percent: f64,
    /// How often retention runs (and at start).
    pub retention_interval: Span,
    /// Segments deleted per batch (retention and eviction).
    pub delete_batch: usize,
}

impl Default for Storage {
    fn default() -> Self {
        Storage {
            disk_warning_percent: 85,
            disk_critical_percent: 90,
            min_free: None,
            min_free_percent: 5.0,
            retention_interval: Span::secs(3600),
            delete_batch: 500,
        }
    }
}

/// `[api]`: the daemon's HTTP API, metrics and dashboard.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Api {
    pub listen: SocketAddr,
    /// File holding the token that mutations (reset, silence, webhook) need,
    /// and every request when `listen` is not a loopback address.
    pub token_file: PathBuf,
    /// `Host` header values the API accepts besides its own address and
    /// `localhost` (a browser that reaches the box by another name, e.g.
    /// `nvr-escola.local:8000`). Any other is refused (DNS rebinding).
    pub allowed_hosts: Vec<String>,
    /// The dashboard and API over HTTPS: the operator's certificate chain
    /// (leaf first) and its private key, PEM files; both or neither. With
    /// them, `tls_listen` serves HTTPS (the LAN) and `listen` stays plain
    /// HTTP on loopback for this box's own programs: the CLI, MediaMTX's
    /// authorization callback, Prometheus and Alertmanager
    /// (docs/design.md, "HTTPS").
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Where HTTPS is served when `tls_cert` and `tls_key` are set.
    pub tls_listen: SocketAddr,
}

impl Default for Api {
    fn default() -> Self {
        Api {
            listen: SocketAddr::from(([127, 0, 0, 1], 8000)),
            token_file: PathBuf::from("/etc/vms/api-token"),
            allowed_hosts: Vec::new(),
            tls_cert: None,
            tls_key: None,
            tls_listen: SocketAddr::from(([0, 0, 0, 0], 8443)),
        }
    }
}

impl Api {
    /// The certificate and key files when HTTPS is on.
    pub fn tls(&self) -> Option<(&Path, &Path)> {
        Some((self.tls_cert.as_deref()?, self.tls_key.as_deref()?))
    }
}

/// `[access]`: dashboard logins, their lockout and the audit trail.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Access {
    /// A dashboard session unused this long ends.
    pub session_idle: Span,
    /// A session ends this long after its login, used or not.
    pub session_max: Span,
    /// Failed logins of one account within `failure_window` that lock it.
    pub max_failures: u32,
    /// Failed logins from one address within `failure_window` that lock
    /// the address.
    pub max_failures_per_address: u32,
    pub failure_window: Span,
    /// How long a lockout lasts (or until `vms-supervisor user unlock`).
    pub lockout: Span,
    /// Audit rows are kept this many days (default 5 years), whatever the
    /// video retention.
    pub audit_retention_days: u32,
}

impl Default for Access {
    fn default() -> Self {
        Access {
            session_idle: Span::secs(30 * 60),
            session_max: Span::secs(12 * 3600),
            max_failures: 5,
            max_failures_per_address: 20,
            failure_window: Span::secs(15 * 60),
            lockout: Span::secs(15 * 60),
            audit_retention_days: 1826,
        }
    }
}

/// `[state]`: where the daemon keeps SQLite and generated files.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct State {
    pub dir: PathBuf,
}

impl Default for State {
    fn default() -> Self {
        State {
            dir: PathBuf::from("/var/lib/vms"),
        }
    }
}

/// `[backup]`: the off-site copy of every completed segment to an
/// S3-compatible bucket. The keys come from `access_key_id_file` /
/// `secret_access_key_file` or `VMS_S3_ACCESS_KEY_ID` /
/// `VMS_S3_SECRET_ACCESS_KEY`, never from this file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Backup {
    pub enabled: bool,
    /// `https://s3.sa-east-1.amazonaws.com`, `http://minio.local:9000`, ...
    pub endpoint: String,
    pub region: String,
    pub bucket: String,
    pub prefix: String,
    /// `https://host/bucket/key` (MinIO, Ceph) instead of `https://bucket.host/key`.
    pub path_style: bool,
    pub storage_class: String,
    pub access_key_id_file: Option<PathBuf>,
    pub secret_access_key_file: Option<PathBuf>,
    /// Upload bandwidth limit in bytes per second; `"0"`: none.
    pub max_bytes_per_second: Bytes,
    pub concurrency: u32,
    pub lag_warning: Span,
    pub lag_critical: Span,
    /// The longest wait between tries while the service is unreachable
    /// (tries start 5 s apart and double up to this).
    pub retry_max: Span,
}

impl Default for Backup {
    fn default() -> Self {
        Backup {
            enabled: false,
            endpoint: String::new(),
            region: "us-east-1".into(),
            bucket: String::new(),
            prefix: "vms".into(),
            path_style: false,
            storage_class: "GLACIER_IR".into(),
            access_key_id_file: None,
            secret_access_key_file: None,
            max_bytes_per_second: Bytes(0),
            concurrency: 2,
            lag_warning: Span::secs(2 * 3600),
            lag_critical: Span::secs(24 * 3600),
            retry_max: Span::secs(600),
        }
    }
}

const STORAGE_CLASSES: &[&str] = &[
    "STANDARD",
    "REDUCED_REDUNDANCY",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "GLACIER",
    "GLACIER_IR",
    "DEEP_ARCHIVE",
];

fn check_backup(config: &mut Config, daemon: bool) -> Result<(), ConfigError> {
    let b = &config.backup;
    if !b.enabled {
        return Ok(());
    }
    let url = b.endpoint.trim();
    if !(url.starts_with("http://") || url.starts_with("https://")) || url.len() < 10 {
        return Err(ConfigError::new(
            "backup.endpoint",
            format!("{:?} is not an http(s) URL", b.endpoint),
        ));
    }
    if b.region.trim().is_empty() {
        return Err(ConfigError::new("backup.region", "must not be empty"));
    }
    let bucket_ok = (3..=63).contains(&b.bucket.len())
        && b.bucket
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'.');
    if !bucket_ok {
        return Err(ConfigError::new(
            "backup.bucket",
            format!("{:?} is not a bucket name (3-63 of a-z 0-9 . -)", b.bucket),
        ));
    }
    if b.prefix.contains("..") || b.prefix.contains('\\') {
        return Err(ConfigError::new(
            "backup.prefix",
            "must not contain .. or \\",
        ));
    }
    if !STORAGE_CLASSES.contains(&b.storage_class.as_str()) {
        return Err(ConfigError::new(
            "backup.storage_class",
            format!(
                "{:?} is not one of {}",
                b.storage_class,
                STORAGE_CLASSES.join(", ")
            ),
        ));
    }
    if !(1..=16).contains(&b.concurrency) {
        return Err(ConfigError::new("backup.concurrency", "must be 1 to 16"));
    }
    if b.max_bytes_per_second.0 != 0 && b.max_bytes_per_second.0 < 16 * 1024 {
        return Err(ConfigError::new(
            "backup.max_bytes_per_second",
            "must be 0 (no limit) or at least 16KiB",
        ));
    }
    if b.lag_warning.is_zero() {
        return Err(ConfigError::new("backup.lag_warning", "must not be zero"));
    }
    if b.lag_critical.get() <= b.lag_warning.get() {
        return Err(ConfigError::new(
            "backup.lag_critical",
            "must be longer than backup.lag_warning",
        ));
    }
    if b.retry_max.get() < std::time::Duration::from_secs(1) {
        return Err(ConfigError::new("backup.retry_max", "must be at least 1s"));
    }
    if !daemon {
        return Ok(());
    }
    let id = load_secret(
        "backup.access_key_id_file",
        b.access_key_id_file.as_deref(),
        "VMS_S3_ACCESS_KEY_ID",
    )?;
    let secret = load_secret(
        "backup.secret_access_key_file",
        b.secret_access_key_file.as_deref(),
        "VMS_S3_SECRET_ACCESS_KEY",
    )?;
    if id.is_none() {
        return Err(ConfigError::new(
            "backup.access_key_id_file",
            "backup is enabled but no access key id was given: set access_key_id_file or VMS_S3_ACCESS_KEY_ID",
        ));
    }
    if secret.is_none() {
        return Err(ConfigError::new(
            "backup.secret_access_key_file",
            "backup is enabled but no secret key was given: set secret_access_key_file or VMS_S3_SECRET_ACCESS_KEY",
        ));
    }
    config.secrets.s3_access_key_id = id;
    config.secrets.s3_secret_access_key = secret;
    Ok(())
}

/// `[alerts]`: who is told, and how.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Alerts {
    /// Send a reminder while a Critical alert stays open this long (`"0s"`: never).
    pub reminder_after: Span,
    pub telegram: Telegram,
    pub email: Email,
}

impl Default for Alerts {
    fn default() -> Self {
        Alerts {
            reminder_after: Span::secs(3600),
            telegram: Telegram::default(),
            email: Email::default(),
        }
    }
}

/// `[alerts.telegram]`. The bot token comes from `bot_token_file` or the
/// environment variable `VMS_TELEGRAM_BOT_TOKEN`, never from this file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Telegram {
    pub enabled: bool,
    pub chat_id: String,
    pub bot_token_file: Option<PathBuf>,
    /// Base URL of the Bot API; tests point it at a local server.
    pub api_base: String,
}

impl Default for Telegram {
    fn default() -> Self {
        Telegram {
            enabled: false,
            chat_id: String::new(),
            bot_token_file: None,
            api_base: "https://api.telegram.org".into(),
        }
    }
}

/// `[alerts.email]`. The SMTP password comes from `password_file` or the
/// environment variable `VMS_SMTP_PASSWORD`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Email {
    pub enabled: bool,
    pub smtp_host: String,
    pub smtp_port: u16,
    /// `starttls`, `tls` or `none`.
    pub security: SmtpSecurity,
    pub username: String,
    pub password_file: Option<PathBuf>,
    pub from: String,
    pub to: Vec<String>,
}

impl Default for Email {
    fn default() -> Self {
        Email {
            enabled: false,
            smtp_host: String::new(),
            smtp_port: 587,
            security: SmtpSecurity::Starttls,
            username: String::new(),
            password_file: None,
            from: String::new(),
            to: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    Starttls,
    Tls,
    None,
}

/// One `[[cameras]]` entry. Its MediaMTX path is `cam_<id>`.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Camera {
    pub id: u32,
    pub name: String,
    /// `rtsp://`, `rtsps://`, `rtmp://`, `rtmps://`, `http(s)://` (HLS) or `srt://`.
    pub url: String,
    /// `automatic` (UDP, then TCP), `tcp`, `udp` or `multicast`, for RTSP.
    #[serde(default)]
    pub rtsp_transport: Option<String>,
    /// This camera's retention in days, when it differs from
    /// `recording.retention_days`.
    #[serde(default)]
    pub retention_days: Option<u32>,
}

impl Camera {
    /// The MediaMTX path name of this camera.
    pub fn path_name(&self) -> String {
        path_name(self.id)
    }

    /// The URL with any password replaced, fit for logs and the API.
    pub fn redacted_url(&self) -> String {
        redact_url(&self.url)
    }
}

/// The MediaMTX path name of camera `id` (fixed interface: `cam_{id}`).
pub fn path_name(id: u32) -> String {
    format!("cam_{id}")
}

/// Where to reach a listener from this box: a wildcard address (`0.0.0.0`,
/// `[::]`) is reached through the loopback of the same family.
pub fn connect_addr(listen: SocketAddr) -> SocketAddr {
    match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), listen.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), listen.port())
        }
        _ => listen,
    }
}

/// [`connect_addr`] for MediaMTX's `host:port` listener strings, where an
/// empty host (`:8888`) also means every interface.
pub fn connect_addr_str(listen: &str) -> String {
    match listen.rsplit_once(':') {
        Some(("", port)) => format!("127.0.0.1:{port}"),
        _ => match listen.parse::<SocketAddr>() {
            Ok(a) => connect_addr(a).to_string(),
            Err(_) => listen.to_string(),
        },
    }
}

/// The camera id of a MediaMTX path name or recordings directory
/// (`cam_5` → 5); `None` for anything that is not one of ours.
pub fn camera_of_path(name: &str) -> Option<u32> {
    let digits = name.strip_prefix("cam_")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

impl fmt::Debug for Camera {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Camera")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("url", &self.redacted_url())
            .field("rtsp_transport", &self.rtsp_transport)
            .finish()
    }
}

/// Replaces the password in `scheme://user:password@host/...` by `***`,
/// whatever the shape of the URL (see [`scrub_credentials`]).
pub fn redact_url(url: &str) -> String {
    scrub_credentials(url)
}

/// Masks the credentials of every URL-like token in `text`: the part
/// before an `@` that follows `//`, `:/` or contains a `:` (a password).
/// `rtsp://admin:pw@cam`, `rtsp:/admin:pw@cam` (a slash missing) and
/// `rtsp:admin:pw@cam` all lose `pw`; the user name is kept where it is
/// clearly delimited. An e-mail address (`ti@prefeitura.gov.br`) is left
/// alone. Used for every config error message, so that nothing derived from
/// a camera URL reaches the log, the API or the alert history unredacted.
pub fn scrub_credentials(text: &str) -> String {
    let is_break = |c: char| {
        c.is_whitespace() || matches!(c, '"' | '\'' | '(' | ')' | '[' | ']' | '<' | '>' | ',')
    };
    let mut out = String::with_capacity(text.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        out.push_str(&scrub_word(word));
        word.clear();
    };
    for c in text.chars() {
        if is_break(c) {
            flush(&mut word, &mut out);
            out.push(c);
        } else {
            word.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

/// One word of [`scrub_credentials`]: everything between the scheme and the
/// last `@` is userinfo.
fn scrub_word(word: &str) -> String {
    let Some(at) = word.rfind('@') else {
        return word.to_string();
    };
    let scheme_end = word[..at]
        .find("://")
        .map(|i| i + 3)
        .or_else(|| word[..at].find(":/").map(|i| i + 2));
    let (scheme, userinfo) = match scheme_end {
        Some(i) => word[..at].split_at(i),
        None => ("", &word[..at]),
    };
    let masked = match (userinfo.find(':'), scheme.is_empty()) {
        (Some(colon), _) => format!("{}:***", &userinfo[..colon]),
        (None, false) if !userinfo.is_empty() => "***".to_string(),
        // An e-mail address: no scheme, no password.
        _ => return word.to_string(),
    };
    format!("{scheme}{masked}{}", &word[at..])
}

/// Secrets loaded from files or the environment during validation.
#[derive(Debug, Clone, Default)]
pub struct Secrets {
    pub telegram_bot_token: Option<Secret>,
    pub smtp_password: Option<Secret>,
    pub s3_access_key_id: Option<Secret>,
    pub s3_secret_access_key: Option<Secret>,
}

const STREAM_SCHEMES: &[&str] = &[
    "rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "srt", "udp",
];

impl Config {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::new(path.display().to_string(), format!("cannot read: {e}"))
        })?;
        Config::from_toml(&text)
    }

    /// Parses and validates a TOML document.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let mut config = parse(text)?;
        validate(&mut config)?;
        Ok(config)
    }

    /// For the commands that only talk to the running daemon (`status`,
    /// `alerts`, `camera reset`): the file must be valid, but the secrets and
    /// the daemon's directories are the daemon's business, not the caller's
    /// (an administrator's shell has neither the bot token nor write access
    /// to the state directory).
    ///
    /// A file that was edited into an invalid state does not lock the
    /// administrator out: the daemon keeps running its previous config, so
    /// the keys a client needs (`api.listen`, `api.token_file`, `state.dir`,
    /// `general.timezone`) are taken from the file where they are valid on
    /// their own, and the error comes back beside the config for the caller
    /// to print as a warning. Only a file that is not TOML at all is an error.
    pub fn load_for_client(path: &Path) -> Result<(Config, Option<ConfigError>), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::new(path.display().to_string(), format!("cannot read: {e}"))
        })?;
        let error = match parse(&text).and_then(|mut c| check(&mut c, false).map(|()| c)) {
            Ok(config) => return Ok((config, None)),
            Err(e) => e,
        };
        let Ok(table) = text.parse::<toml::Table>() else {
            return Err(error);
        };
        let mut minimal = toml::Table::new();
        for (section, key) in CLIENT_KEYS {
            let value = table
                .get(*section)
                .and_then(|s| s.get(*key))
                .cloned()
                // A key that is itself wrong keeps its default.
                .filter(|v| {
                    let mut one = toml::Table::new();
                    let mut sec = toml::Table::new();
                    sec.insert(key.to_string(), v.clone());
                    one.insert(section.to_string(), toml::Value::Table(sec));
                    parse(&one.to_string())
                        .and_then(|mut c| check(&mut c, false))
                        .is_ok()
                });
            if let Some(v) = value {
                let sec = minimal
                    .entry(section.to_string())
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()));
                if let Some(sec) = sec.as_table_mut() {
                    sec.insert(key.to_string(), v);
                }
            }
        }
        let mut config = parse(&minimal.to_string()).map_err(|_| error.clone())?;
        check(&mut config, false).map_err(|_| error.clone())?;
        Ok((config, Some(error)))
    }

    pub fn camera(&self, id: u32) -> Option<&Camera> {
        self.cameras.iter().find(|c| c.id == id)
    }

    /// Where the generated MediaMTX config lives.
    pub fn mediamtx_config_path(&self) -> PathBuf {
        self.state.dir.join("mediamtx.yml")
    }

    pub fn timezone(&self) -> chrono_tz::Tz {
        // Validated in `validate`.
        self.general
            .timezone
            .parse()
            .unwrap_or(chrono_tz::America::Sao_Paulo)
    }
}

/// What [`Config::load_for_client`] keeps from a file that is invalid.
const CLIENT_KEYS: &[(&str, &str)] = &[
    ("api", "listen"),
    ("api", "token_file"),
    ("state", "dir"),
    ("general", "timezone"),
];

/// Step 1: strict parsing, naming the key of the first error.
fn parse(text: &str) -> Result<Config, ConfigError> {
    let de = toml::Deserializer::new(text);
    serde_path_to_error::deserialize(de).map_err(|err| {
        let key = err.path().to_string();
        let inner = err.into_inner();
        // One line: journald and `check-config` callers read line by line.
        let message = inner.message().trim().replace('\n', " ");
        let location = inner
            .span()
            .map(|span| {
                let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
                format!(" (line {line})")
            })
            .unwrap_or_default();
        let mut key = if key == "." || key.is_empty() {
            "config".to_string()
        } else {
            key
        };
        // serde names the table for a missing field; name the field itself.
        if let Some(field) = message
            .strip_prefix("missing field `")
            .and_then(|r| r.split('`').next())
        {
            key = if key == "config" {
                field.to_string()
            } else {
                format!("{key}.{field}")
            };
        }
        ConfigError::new(key, format!("{message}{location}"))
    })
}

/// Step 2: reject what parses but is wrong, and load the secrets.
pub fn validate(config: &mut Config) -> Result<(), ConfigError> {
    check(config, true)
}

/// `daemon`: also check the directories and load the secrets.
fn check(config: &mut Config, daemon: bool) -> Result<(), ConfigError> {
    let err = |key: &str, msg: String| Err(ConfigError::new(key, msg));

    if config.general.timezone.parse::<chrono_tz::Tz>().is_err() {
        return err(
            "general.timezone",
            format!(
                "unknown time zone {:?}; use an IANA name such as \"America/Sao_Paulo\"",
                config.general.timezone
            ),
        );
    }
    if config.general.box_name.trim().is_empty() {
        return err("general.box_name", "must not be empty".into());
    }
    for (key, value) in [
        ("general.box_name", &config.general.box_name),
        ("general.site", &config.general.site),
    ] {
        if value.chars().count() > 64 {
            return err(key, "must be at most 64 characters".into());
        }
        if value.chars().any(char::is_control) {
            return err(
                key,
                "must not contain control characters (it is a Prometheus label and a line of every alert)".into(),
            );
        }
    }
    check_backup(config, daemon)?;

    // Durations that must not be zero.
    let m = &config.mediamtx;
    let mo = &config.monitor;
    let r = &config.recording;
    let nonzero: [(&str, Span); 20] = [
        ("mediamtx.hls_segment_duration", m.hls_segment_duration),
        ("mediamtx.read_timeout", m.read_timeout),
        ("mediamtx.startup_timeout", m.startup_timeout),
        ("mediamtx.stop_timeout", m.stop_timeout),
        ("mediamtx.restart_delay", m.restart_delay),
        ("mediamtx.restart_max_delay", m.restart_max_delay),
        ("mediamtx.healthy_after", m.healthy_after),
        ("mediamtx.storm_window", m.storm_window),
        ("mediamtx.memory_limit_for", m.memory_limit_for),
        ("recording.segment_duration", r.segment_duration),
        ("recording.part_duration", r.part_duration),
        ("monitor.interval", mo.interval),
        ("monitor.api_poll_interval", mo.api_poll_interval),
        ("monitor.probe_timeout", mo.probe_timeout),
        ("monitor.stall_after", mo.stall_after),
        ("monitor.recording_stale", mo.recording_stale),
        ("monitor.recovery_remove_wait", mo.recovery_remove_wait),
        ("monitor.recovery_verify_wait", mo.recovery_verify_wait),
        ("monitor.recording_recheck_wait", mo.recording_recheck_wait),
        ("monitor.grace_period", mo.grace_period),
    ];
    for (key, span) in nonzero {
        if span.is_zero() {
            return err(key, "must be greater than zero".into());
        }
    }
    if m.restart_max_delay < m.restart_delay {
        return err(
            "mediamtx.restart_max_delay",
            format!(
                "must not be shorter than mediamtx.restart_delay ({})",
                m.restart_delay
            ),
        );
    }
    for (key, n) in [
        ("mediamtx.hls_segment_count", m.hls_segment_count),
        ("mediamtx.storm_restarts", m.storm_restarts),
        ("mediamtx.hang_probes", m.hang_probes),
        ("mediamtx.log_lines_per_second", m.log_lines_per_second),
        ("monitor.failures_to_offline", mo.failures_to_offline),
        ("recording.retention_days", r.retention_days),
    ] {
        if n == 0 {
            return err(key, "must be greater than zero".into());
        }
    }
    let min_segments = match m.hls_variant {
        HlsVariant::LowLatency => 7,
        _ => 3,
    };
    if m.hls_segment_count < min_segments {
        return err(
            "mediamtx.hls_segment_count",
            format!(
                "hls_variant {:?} needs at least {min_segments} segments (MediaMTX's HLS muxer would crash)",
                m.hls_variant.as_mediamtx()
            ),
        );
    }
    if r.segment_duration.get() > std::time::Duration::from_secs(86_400) {
        return err(
            "recording.segment_duration",
            "must not exceed 1 day (MediaMTX's limit)".into(),
        );
    }
    if r.part_duration >= r.segment_duration {
        return err(
            "recording.part_duration",
            "must be shorter than recording.segment_duration".into(),
        );
    }
    if mo.stall_after <= r.part_duration {
        return err(
            "monitor.stall_after",
            format!(
                "must be longer than recording.part_duration ({}): MediaMTX writes segment data only that often",
                r.part_duration
            ),
        );
    }
    if mo.recording_stale < mo.stall_after {
        return err(
            "monitor.recording_stale",
            "must not be shorter than monitor.stall_after".into(),
        );
    }
    if mo.probe_timeout >= mo.interval {
        return err(
            "monitor.probe_timeout",
            "must be shorter than monitor.interval".into(),
        );
    }
    for (i, ice) in m.ice_servers.iter().enumerate() {
        if !(ice.url.starts_with("stun:")
            || ice.url.starts_with("turn:")
            || ice.url.starts_with("turns:"))
        {
            return err(
                &format!("mediamtx.ice_servers[{i}].url"),
                format!("{:?} is not a stun:, turn: or turns: URL", ice.url),
            );
        }
    }
    for (key, addr) in [
        ("mediamtx.hls_address", &m.hls_address),
        ("mediamtx.webrtc_address", &m.webrtc_address),
        (
            "mediamtx.webrtc_local_udp_address",
            &m.webrtc_local_udp_address,
        ),
        ("mediamtx.rtsp_address", &m.rtsp_address),
    ] {
        // An empty RTSP address turns RTSP re-streaming off.
        if key == "mediamtx.rtsp_address" && addr.is_empty() {
            continue;
        }
        if let Err(msg) = check_listen_address(addr) {
            return err(key, msg);
        }
    }
    let loopback = [
        ("mediamtx.api_address", m.api_address),
        ("mediamtx.metrics_address", m.metrics_address),
        ("mediamtx.playback_address", m.playback_address),
    ];
    for (key, addr) in loopback {
        if !addr.ip().is_loopback() {
            return err(
                key,
                format!("{addr} is not a loopback address; MediaMTX's API, metrics and playback stay on this box"),
            );
        }
    }
    let s = &config.storage;
    if !(1..=100).contains(&s.disk_warning_percent) {
        return err(
            "storage.disk_warning_percent",
            "must be between 1 and 100".into(),
        );
    }
    if !(1..=100).contains(&s.disk_critical_percent) {
        return err(
            "storage.disk_critical_percent",
            "must be between 1 and 100".into(),
        );
    }
    if !(0.0..=50.0).contains(&s.min_free_percent) || !s.min_free_percent.is_finite() {
        return err(
            "storage.min_free_percent",
            format!("{} is not a share from 0 to 50", s.min_free_percent),
        );
    }
    if s.retention_interval.get() < std::time::Duration::from_secs(60) {
        return err("storage.retention_interval", "must be at least 1m".into());
    }
    if !(1..=10_000).contains(&s.delete_batch) {
        return err(
            "storage.delete_batch",
            format!("{} is not from 1 to 10000", s.delete_batch),
        );
    }
    if s.disk_critical_percent < s.disk_warning_percent {
        return err(
            "storage.disk_critical_percent",
            "must not be lower than storage.disk_warning_percent".into(),
        );
    }

    // Cameras.
    let mut ids = HashSet::new();
    for (i, cam) in config.cameras.iter().enumerate() {
        let key = |field: &str| format!("cameras[{i}].{field}");
        if !ids.insert(cam.id) {
            return err(&key("id"), format!("duplicate camera id {}", cam.id));
        }
        if cam.name.trim().is_empty() {
            return err(&key("name"), "must not be empty".into());
        }
        if cam
            .name
            .chars()
            .any(|c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}'))
        {
            return err(
                &key("name"),
                "must not contain control characters (line breaks, tabs, carriage returns)".into(),
            );
        }
        if let Err(msg) = check_stream_url(&cam.url) {
            return err(&key("url"), msg);
        }
        if let Some(d) = cam.retention_days {
            if !(1..=3650).contains(&d) {
                return err(
                    &key("retention_days"),
                    format!("{d} is not from 1 to 3650 days"),
                );
            }
        }
        if let Some(t) = &cam.rtsp_transport {
            if !["automatic", "tcp", "udp", "multicast"].contains(&t.as_str()) {
                return err(
                    &key("rtsp_transport"),
                    format!("{t:?} is not one of automatic, tcp, udp, multicast"),
                );
            }
        }
    }

    // Directories the daemon must be able to write.
    for (key, dir) in [
        ("state.dir", &config.state.dir),
        ("recording.path", &config.recording.path),
    ] {
        if !dir.is_absolute() {
            return err(key, format!("{} must be an absolute path", dir.display()));
        }
        if !daemon {
            continue;
        }
        if let Err(msg) = check_writable(dir) {
            return err(key, msg);
        }
    }
    if !config.api.token_file.is_absolute() {
        return err(
            "api.token_file",
            format!(
                "{} must be an absolute path",
                config.api.token_file.display()
            ),
        );
    }
    check_tls(&config.api, daemon)?;
    for (i, h) in config.api.allowed_hosts.iter().enumerate() {
        if h.is_empty() || h.chars().any(|c| c.is_whitespace() || c == '/' || c == '@') {
            return err(
                &format!("api.allowed_hosts[{i}]"),
                format!("{h:?} is not a host or host:port"),
            );
        }
    }
    let a = &config.access;
    for (key, span) in [
        ("access.session_idle", a.session_idle),
        ("access.session_max", a.session_max),
        ("access.failure_window", a.failure_window),
        ("access.lockout", a.lockout),
    ] {
        if span.0.is_zero() {
            return err(key, "must be longer than 0s".to_string());
        }
    }
    if a.session_max.0 < a.session_idle.0 {
        return err(
            "access.session_max",
            "must not be shorter than access.session_idle".to_string(),
        );
    }
    if a.max_failures == 0 || a.max_failures_per_address == 0 {
        return err(
            if a.max_failures == 0 {
                "access.max_failures"
            } else {
                "access.max_failures_per_address"
            },
            "must be at least 1".to_string(),
        );
    }
    if a.audit_retention_days == 0 {
        return err(
            "access.audit_retention_days",
            "must be at least 1".to_string(),
        );
    }

    // Alerts and their secrets.
    let t = &config.alerts.telegram;
    if t.enabled {
        if t.chat_id.trim().is_empty() {
            return err(
                "alerts.telegram.chat_id",
                "must be set when Telegram is enabled".into(),
            );
        }
        if !(t.api_base.starts_with("http://") || t.api_base.starts_with("https://")) {
            return err(
                "alerts.telegram.api_base",
                format!("{:?} is not an http(s) URL", t.api_base),
            );
        }
        if !daemon {
            return check_email(config, daemon);
        }
        let token = load_secret(
            "alerts.telegram.bot_token_file",
            t.bot_token_file.as_deref(),
            "VMS_TELEGRAM_BOT_TOKEN",
        )?;
        if token.is_none() {
            return err(
                "alerts.telegram.bot_token_file",
                "Telegram is enabled but no token was given: set bot_token_file or VMS_TELEGRAM_BOT_TOKEN".into(),
            );
        }
        config.secrets.telegram_bot_token = token;
    }
    check_email(config, daemon)
}

fn check_email(config: &mut Config, daemon: bool) -> Result<(), ConfigError> {
    let err = |key: &str, msg: String| Err(ConfigError::new(key, msg));
    let e = &config.alerts.email;
    if e.enabled {
        if e.smtp_host.trim().is_empty() {
            return err(
                "alerts.email.smtp_host",
                "must be set when e-mail is enabled".into(),
            );
        }
        if !looks_like_address(&e.from) {
            return err(
                "alerts.email.from",
                format!("{:?} is not an e-mail address", e.from),
            );
        }
        if e.to.is_empty() {
            return err("alerts.email.to", "needs at least one recipient".into());
        }
        for (i, to) in e.to.iter().enumerate() {
            if !looks_like_address(to) {
                return err(
                    &format!("alerts.email.to[{i}]"),
                    format!("{to:?} is not an e-mail address"),
                );
            }
        }
        if !daemon {
            return Ok(());
        }
        config.secrets.smtp_password = load_secret(
            "alerts.email.password_file",
            e.password_file.as_deref(),
            "VMS_SMTP_PASSWORD",
        )?;
        if !e.username.is_empty() && config.secrets.smtp_password.is_none() {
            return err(
                "alerts.email.password_file",
                "a username is set but no password: set password_file or VMS_SMTP_PASSWORD".into(),
            );
        }
    }
    Ok(())
}

fn looks_like_address(s: &str) -> bool {
    let s = s.trim();
    // Accept "Name <user@host>" and "user@host".
    let addr = match (s.find('<'), s.rfind('>')) {
        (Some(a), Some(b)) if a < b => &s[a + 1..b],
        _ => s,
    };
    if addr.contains(char::is_whitespace) {
        return false;
    }
    match addr.split_once('@') {
        Some((user, host)) => {
            !user.is_empty() && !host.contains('@') && (host.contains('.') || host == "localhost")
        }
        None => false,
    }
}

/// Reads a secret from `file` (trailing newline trimmed), else from `env`.
fn load_secret(key: &str, file: Option<&Path>, env: &str) -> Result<Option<Secret>, ConfigError> {
    if let Some(file) = file {
        let text = std::fs::read_to_string(file)
            .map_err(|e| ConfigError::new(key, format!("cannot read {}: {e}", file.display())))?;
        let value = text.trim();
        if value.is_empty() {
            return Err(ConfigError::new(
                key,
                format!("{} is empty", file.display()),
            ));
        }
        return Ok(Some(Secret::new(value)));
    }
    Ok(std::env::var(env)
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .map(Secret::new))
}

fn check_stream_url(url: &str) -> Result<(), String> {
    if url.trim().is_empty() {
        return Err("must not be empty".into());
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "{:?} contains spaces or control characters",
            redact_url(url)
        ));
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(format!(
            "{:?} is not a stream URL; expected e.g. rtsp://camera-address:554/stream",
            redact_url(url)
        ));
    };
    if !STREAM_SCHEMES.contains(&scheme.to_ascii_lowercase().as_str()) {
        return Err(format!(
            "scheme {scheme:?} is not a stream; use one of {}",
            STREAM_SCHEMES.join(", ")
        ));
    }
    let authority = rest.split('/').next().unwrap_or("");
    let host = authority.rsplit('@').next().unwrap_or("");
    if host.is_empty() || host.starts_with(':') {
        return Err(format!("{:?} has no host", redact_url(url)));
    }
    Ok(())
}

/// `[api] tls_cert`, `tls_key`, `tls_listen`; with `daemon`, the pair is
/// read and checked too (a key that is not the certificate's, a key file
/// every user may read).
fn check_tls(api: &Api, daemon: bool) -> Result<(), ConfigError> {
    let err = |key: &str, msg: String| Err(ConfigError::new(key, msg));
    let (cert, key) = match (&api.tls_cert, &api.tls_key) {
        (None, None) => return Ok(()),
        (Some(_), None) => {
            return err(
                "api.tls_key",
                "api.tls_cert is set: tls_key (the certificate's private key, a PEM file) must be set too".into(),
            )
        }
        (None, Some(_)) => {
            return err(
                "api.tls_cert",
                "api.tls_key is set: tls_cert (the certificate chain, a PEM file) must be set too"
                    .into(),
            )
        }
        (Some(c), Some(k)) => (c, k),
    };
    for (name, path) in [("api.tls_cert", cert), ("api.tls_key", key)] {
        if !path.is_absolute() {
            return err(name, format!("{} must be an absolute path", path.display()));
        }
    }
    if !api.listen.ip().is_loopback() {
        return err(
            "api.listen",
            format!(
                "{} is not a loopback address: with HTTPS on (api.tls_cert), api.listen is the plain-HTTP listener for this box's own programs and stays on loopback (\"127.0.0.1:8000\"); the LAN is served on api.tls_listen ({})",
                api.listen, api.tls_listen
            ),
        );
    }
    let (a, b) = (api.tls_listen, api.listen);
    if a.port() == b.port() && (a.ip().is_unspecified() || a.ip() == b.ip()) {
        return err(
            "api.tls_listen",
            format!("{a} takes the port of api.listen ({b}); give HTTPS its own port (8443)"),
        );
    }
    if daemon {
        crate::tls::load(cert, key).map_err(|e| ConfigError::new(e.key, e.message))?;
    }
    Ok(())
}

/// MediaMTX listener addresses: `:port`, `host:port` or `[v6]:port`.
fn check_listen_address(addr: &str) -> Result<(), String> {
    let port = addr.rsplit_once(':').map(|(_, p)| p).ok_or_else(|| {
        format!("{addr:?} is not an address; write e.g. \":8888\" or \"0.0.0.0:8888\"")
    })?;
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(()),
        _ => Err(format!("{addr:?} has no valid port")),
    }
}

/// The directory, or the nearest ancestor that exists, must be writable by
/// this process (the daemon creates what is missing).
fn check_writable(dir: &Path) -> Result<(), String> {
    let mut probe = dir;
    loop {
        if probe.exists() {
            if !probe.is_dir() {
                return Err(format!("{} is not a directory", probe.display()));
            }
            return nix::unistd::access(
                probe,
                nix::unistd::AccessFlags::W_OK | nix::unistd::AccessFlags::X_OK,
            )
            .map_err(|e| {
                if probe == dir {
                    format!("{} is not writable by this user: {e}", dir.display())
                } else {
                    format!(
                        "{} does not exist and {} is not writable by this user: {e}",
                        dir.display(),
                        probe.display()
                    )
                }
            });
        }
        match probe.parent() {
            Some(p) => probe = p,
            None => return Err(format!("{} has no existing parent", dir.display())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_dirs(body: &str) -> String {
        let dir = std::env::temp_dir();
        format!(
            "[state]\ndir = {:?}\n[recording]\npath = {:?}\n{body}",
            dir.join("vms-test-state"),
            dir.join("vms-test-rec")
        )
    }

    #[test]
    fn defaults_are_the_designs() {
        let c = Config::from_toml(&with_dirs("")).unwrap();
        assert_eq!(c.monitor.interval, Span::secs(30));
        assert_eq!(c.monitor.probe_timeout, Span::secs(3));
        assert_eq!(c.monitor.recording_stale, Span::secs(120));
        assert_eq!(c.monitor.recovery_remove_wait, Span::secs(2));
        assert_eq!(c.monitor.recovery_verify_wait, Span::secs(10));
        assert_eq!(c.monitor.failures_to_offline, 3);
        assert_eq!(c.recording.retention_days, 90);
        assert_eq!(c.recording.segment_duration, Span::secs(60));
        assert_eq!(c.mediamtx.hls_segment_duration, Span::secs(2));
        assert_eq!(c.mediamtx.hls_segment_count, 5);
        assert_eq!(
            c.mediamtx.ice_servers[0].url,
            "stun:stun.l.google.com:19302"
        );
        assert_eq!(c.storage.disk_warning_percent, 85);
        assert_eq!(c.storage.disk_critical_percent, 90);
        assert_eq!(c.general.timezone, "America/Sao_Paulo");
    }

    fn key_of(body: &str) -> String {
        Config::from_toml(&with_dirs(body)).unwrap_err().key
    }

    #[test]
    fn errors_name_the_key() {
        assert_eq!(key_of("[monitor]\nbogus = 1\n"), "monitor.bogus");
        assert_eq!(
            key_of("[monitor]\nprobe_timeout = \"3\"\n"),
            "monitor.probe_timeout"
        );
        assert_eq!(
            key_of("[monitor]\nstall_after = \"0s\"\n"),
            "monitor.stall_after"
        );
        let cams = "[[cameras]]\nid = 1\nname = \"a\"\nurl = \"rtsp://h/1\"\n\
                    [[cameras]]\nid = 2\nname = \"b\"\nurl = \"rtsp://h/2\"\n\
                    [[cameras]]\nid = 3\nname = \"c\"\nurl = \"ftp://h/3\"\n";
        assert_eq!(key_of(cams), "cameras[2].url");
        let dup = "[[cameras]]\nid = 1\nname = \"a\"\nurl = \"rtsp://h/1\"\n\
                   [[cameras]]\nid = 1\nname = \"b\"\nurl = \"rtsp://h/2\"\n";
        assert_eq!(key_of(dup), "cameras[1].id");
        assert_eq!(
            key_of("[general]\ntimezone = \"Mars/Olympus\"\n"),
            "general.timezone"
        );
        assert_eq!(
            key_of("[[cameras]]\nid = 1\nname = \"a\"\nurl = \"rtsp://h\"\ncolour = 1\n"),
            "cameras[0].colour"
        );
    }

    #[test]
    fn unknown_key_message_names_it() {
        let e = Config::from_toml(&with_dirs("[monitor]\nbogus = 1\n")).unwrap_err();
        assert!(e.message.contains("bogus"), "{e}");
        assert!(e.message.contains("line"), "{e}");
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact_url("rtsp://admin:s3cret@10.0.0.5:554/x"),
            "rtsp://admin:***@10.0.0.5:554/x"
        );
        assert_eq!(redact_url("rtsp://10.0.0.5/x"), "rtsp://10.0.0.5/x");
        let cam = Camera {
            id: 1,
            name: "a".into(),
            url: "rtsp://u:pw@h/".into(),
            rtsp_transport: None,
            retention_days: None,
        };
        assert!(!format!("{cam:?}").contains("pw"));
    }

    #[test]
    fn secrets_come_from_files() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "42:abc\n").unwrap();
        let body = format!(
            "[alerts.telegram]\nenabled = true\nchat_id = \"-100\"\nbot_token_file = {token:?}\n"
        );
        let c = Config::from_toml(&with_dirs(&body)).unwrap();
        let t = c.secrets.telegram_bot_token.as_ref().unwrap();
        assert_eq!(t.expose(), "42:abc");
        assert!(!format!("{c:?}").contains("42:abc"));
    }

    /// The shipped file documents every default as `#key = value`. With those
    /// lines uncommented it must still validate and equal the defaults, so
    /// the documentation cannot drift from the code.
    #[test]
    fn shipped_file_documents_the_real_defaults() {
        let shipped = include_str!("../../etc/vms.toml");
        let mut uncommented = String::new();
        for line in shipped.lines() {
            let line = match line.strip_prefix('#') {
                Some(rest) if rest.starts_with(|c: char| c.is_ascii_lowercase() || c == '[') => {
                    rest
                }
                _ => line,
            };
            uncommented.push_str(line);
            uncommented.push('\n');
        }
        let mut documented = parse(&uncommented).expect("uncommented etc/vms.toml parses");
        assert_eq!(documented.cameras.len(), 2, "the example cameras parse");
        let defaults = Config::default();
        assert_eq!(
            format!("{:?}", documented.mediamtx),
            format!("{:?}", defaults.mediamtx)
        );
        assert_eq!(
            format!("{:?}", documented.recording),
            format!("{:?}", defaults.recording)
        );
        assert_eq!(
            format!("{:?}", documented.monitor),
            format!("{:?}", defaults.monitor)
        );
        assert_eq!(
            format!("{:?}", documented.storage),
            format!("{:?}", defaults.storage)
        );
        assert_eq!(
            format!("{:?}", documented.api),
            format!("{:?}", defaults.api)
        );
        assert_eq!(
            format!("{:?}", documented.access),
            format!("{:?}", defaults.access)
        );
        assert_eq!(
            format!("{:?}", documented.state),
            format!("{:?}", defaults.state)
        );
        assert_eq!(
            documented.alerts.reminder_after,
            defaults.alerts.reminder_after
        );
        assert_eq!(documented.general.timezone, defaults.general.timezone);
        assert_eq!(documented.general.language, defaults.general.language);
        assert_eq!(
            documented.alerts.telegram.api_base,
            defaults.alerts.telegram.api_base
        );
        assert_eq!(
            documented.alerts.email.smtp_port,
            defaults.alerts.email.smtp_port
        );
        assert_eq!(
            documented.alerts.email.security,
            defaults.alerts.email.security
        );
        // With writable directories, the example cameras validate too.
        let tmp = std::env::temp_dir();
        documented.state.dir = tmp.join("vms-test-state");
        documented.recording.path = tmp.join("vms-test-rec");
        validate(&mut documented).expect("uncommented etc/vms.toml validates");
    }

    #[test]
    fn email_addresses() {
        assert!(looks_like_address("ti@prefeitura.gov.br"));
        assert!(looks_like_address("VMS <vms@prefeitura.gov.br>"));
        assert!(looks_like_address("root@localhost"));
        assert!(!looks_like_address("prefeitura"));
        assert!(!looks_like_address("a b@c.d"));
    }

    /// A file broken by an edit still lets `status` reach the daemon: the
    /// client keys that are valid are kept, a wrong one falls back to its
    /// default, and the error is returned beside the config.
    #[test]
    fn clients_read_the_keys_they_need_from_an_invalid_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vms.toml");
        let write = |text: &str| std::fs::write(&path, text).unwrap();

        write("[api]\nlisten = \"127.0.0.1:9123\"\n");
        let (c, warning) = Config::load_for_client(&path).unwrap();
        assert_eq!(c.api.listen.port(), 9123);
        assert_eq!(warning, None);

        write(
            "[api]\nlisten = \"127.0.0.1:9123\"\ntoken_file = \"/srv/token\"\n\
             [general]\ntimezone = \"Mars/Olympus\"\n\
             [monitor]\nstall_after = \"soon\"\n",
        );
        let (c, warning) = Config::load_for_client(&path).unwrap();
        assert_eq!(c.api.listen.port(), 9123);
        assert_eq!(c.api.token_file, PathBuf::from("/srv/token"));
        assert_eq!(c.general.timezone, Config::default().general.timezone);
        let warning = warning.expect("the error comes back");
        assert!(
            warning.key == "general.timezone" || warning.key == "monitor.stall_after",
            "{warning}"
        );

        write("[api\nlisten = ");
        assert!(Config::load_for_client(&path).is_err(), "not TOML at all");
    }

    #[test]
    fn https_needs_both_files_a_loopback_listen_and_a_usable_pair() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let c = rcgen::generate_simple_self_signed(vec!["nvr.test".into()]).unwrap();
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        std::fs::write(&cert, c.cert.pem()).unwrap();
        std::fs::write(&key, c.key_pair.serialize_pem()).unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
        let files = format!("tls_cert = {cert:?}\ntls_key = {key:?}\n");

        let on = Config::from_toml(&with_dirs(&format!("[api]\n{files}"))).unwrap();
        assert_eq!(on.api.tls(), Some((cert.as_path(), key.as_path())));
        assert_eq!(on.api.tls_listen, "0.0.0.0:8443".parse().unwrap());
        let off = Config::from_toml(&with_dirs("")).unwrap();
        assert_eq!(off.api.tls(), None);

        let missing = dir.path().join("missing.pem");
        let cases = [
            (format!("tls_cert = {cert:?}\n"), "api.tls_key"),
            (format!("tls_key = {key:?}\n"), "api.tls_cert"),
            (
                format!("tls_cert = \"cert.pem\"\ntls_key = {key:?}\n"),
                "api.tls_cert",
            ),
            (
                format!("tls_cert = {missing:?}\ntls_key = {key:?}\n"),
                "api.tls_cert",
            ),
            (
                format!("tls_cert = {cert:?}\ntls_key = {missing:?}\n"),
                "api.tls_key",
            ),
            (format!("listen = \"0.0.0.0:8000\"\n{files}"), "api.listen"),
            (
                format!("tls_listen = \"0.0.0.0:8000\"\n{files}"),
                "api.tls_listen",
            ),
            (
                format!("tls_listen = \"nvr:443\"\n{files}"),
                "api.tls_listen",
            ),
        ];
        for (api, want) in cases {
            assert_eq!(key_of(&format!("[api]\n{api}")), want, "{api}");
        }
        // A key every user may read.
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = Config::from_toml(&with_dirs(&format!("[api]\n{files}"))).unwrap_err();
        assert_eq!(e.key, "api.tls_key");
        assert!(e.message.contains("every user"), "{e}");
        // A client command (`status`) reads neither file.
        let text = with_dirs(&format!("[api]\n{files}"));
        let path = dir.path().join("vms.toml");
        std::fs::write(&path, text).unwrap();
        let (client, error) = Config::load_for_client(&path).unwrap();
        assert!(error.is_none(), "{error:?}");
        assert_eq!(client.api.listen, "127.0.0.1:8000".parse().unwrap());
    }
}

#[cfg(test)]
mod address_tests {
    use super::*;

    #[test]
    fn camera_passwords_are_masked_whatever_the_url_shape() {
        for (url, shown) in [
            (
                "rtsp://admin:s3cr3t@10.0.0.5/stream",
                "rtsp://admin:***@10.0.0.5/stream",
            ),
            (
                "rtsp:/admin:s3cr3t@10.0.0.5/stream",
                "rtsp:/admin:***@10.0.0.5/stream",
            ),
            ("rtsp:admin:s3cr3t@10.0.0.5", "rtsp:***@10.0.0.5"),
            ("rtsp://s3cr3t@10.0.0.5", "rtsp://***@10.0.0.5"),
            ("rtsp://admin:p/s3cr3t@cam", "rtsp://admin:***@cam"),
            ("rtsp://admin:a@b@cam", "rtsp://admin:***@cam"),
            ("rtsp://10.0.0.5/stream", "rtsp://10.0.0.5/stream"),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
        assert_eq!(
            scrub_credentials("to ti@prefeitura.gov.br and \"rtsp:/u:pw@h\""),
            "to ti@prefeitura.gov.br and \"rtsp:/u:***@h\""
        );
    }

    #[test]
    fn wildcards_are_reached_through_loopback_of_their_family() {
        let a = |s: &str| connect_addr(s.parse().unwrap()).to_string();
        assert_eq!(a("0.0.0.0:8000"), "127.0.0.1:8000");
        assert_eq!(a("[::]:8000"), "[::1]:8000");
        assert_eq!(a("10.1.2.3:8000"), "10.1.2.3:8000");
        assert_eq!(connect_addr_str(":8888"), "127.0.0.1:8888");
        assert_eq!(connect_addr_str("0.0.0.0:8888"), "127.0.0.1:8888");
        assert_eq!(connect_addr_str("[::]:8888"), "[::1]:8888");
        assert_eq!(connect_addr_str("10.1.2.3:8888"), "10.1.2.3:8888");
    }

    #[test]
    fn camera_ids_come_only_from_our_path_names() {
        assert_eq!(camera_of_path("cam_5"), Some(5));
        assert_eq!(camera_of_path("cam_+5"), None);
        assert_eq!(camera_of_path("cam_"), None);
        assert_eq!(camera_of_path("cam_5x"), None);
        assert_eq!(camera_of_path("other"), None);
    }
}
