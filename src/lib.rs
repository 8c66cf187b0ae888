//! vms-supervisor keeps 24/7 camera recording alive on an NVR box.
//!
//! # Layout
//!
//! * [`config`]: `/etc/vms/vms.toml`, parsed strictly and validated, with the
//!   seed's defaults. Every error names its key.
//! * [`mediamtx`]: the MediaMTX we own: its generated config file, its API,
//!   its process and its log lines.
//! * [`recordings`]: inotify on the recordings tree.
//! * [`supervisor`]: the decisions, as synchronous state machines with a fake
//!   clock in tests: the MediaMTX process and the cameras' recovery ladder.
//! * [`daemon`]: the one task that owns the state, feeds the machines and
//!   executes their actions; [`reload`] decides what a config edit changes.
//! * [`events`]: the alert events that producers send to [`alerts`], which
//!   stores them in SQLite and delivers them (Telegram, e-mail).
//! * [`api`]: HTTP API, dashboard, server-sent events; [`metrics`].
//! * [`notify`], [`logging`]: systemd and journald.
//!
//! The binary (`src/main.rs`) parses the command line, loads the config and
//! decides the exit code (0 clean, 78 bad config, 1 anything else).

pub mod alerts;
pub mod api;
pub mod config;
pub mod daemon;
pub mod events;
pub mod logging;
pub mod mediamtx;
pub mod metrics;
pub mod notify;
pub mod recordings;
pub mod reload;
pub mod storage;
pub mod supervisor;

/// The version line printed by `vms-supervisor --version`.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("VMS_GIT_COMMIT"),
    ")"
);
