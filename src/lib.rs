//! vms-supervisor keeps 24/7 camera recording alive on an NVR box.
//!
//! # Layout
//!
//! The modules form layers; a module imports only from the layers below it
//! (a test, `module_graph_is_acyclic`, checks that the imports have no
//! cycle).
//!
//! 1. Leaf types, imported by everyone: [`config`] (`/etc/vms/vms.toml`,
//!    parsed strictly and validated, every error naming its key),
//!    [`events`] (the alert events producers send), [`status`] (the
//!    snapshot the daemon publishes), [`clock`], and small helpers:
//!    [`durable`] (atomic file writes), [`sqlite`] (the owner thread of a
//!    connection), [`token`] (the API's machine token), [`tls`] (the
//!    operator's certificate for HTTPS), [`notify`] and [`logging`]
//!    (systemd and journald).
//! 2. The domain: [`supervisor`] (the decisions, as synchronous state
//!    machines tested with a fake clock), [`mediamtx`] (its generated config,
//!    API client, child process and log lines), [`recordings`] (inotify on
//!    the recordings tree), [`access`] (users, sessions, the audit trail),
//!    [`evidence`] (exports of footage with their checksums),
//!    [`alerts`] (SQLite history, durable outbox,
//!    Telegram, e-mail), [`storage`] (the footage the daemon owns), and
//!    [`reload`] (what a config edit changes).
//! 3. [`daemon`]: the loop that owns the state, feeds the machines and
//!    executes their actions.
//! 4. The edges: [`http`] (API, dashboard, server-sent events) and
//!    [`metrics`], which read the published status and send commands;
//!    [`client`] and [`cli`], the commands that talk to a running daemon.
//! 5. [`app`]: the composition root that wires the pipeline, the loop and
//!    the HTTP edge together. The binary (`src/main.rs`) parses the command
//!    line, loads the config and decides the exit code (0 clean, 78 bad
//!    config, 1 anything else).

pub mod access;
pub mod alerts;
pub mod app;
pub mod cli;
pub mod client;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod durable;
pub mod events;
pub mod evidence;
pub mod http;
pub mod logging;
pub mod mediamtx;
pub mod metrics;
pub mod notify;
pub mod recordings;
pub mod reload;
pub mod sqlite;
pub mod status;
pub mod storage;
pub mod supervisor;
pub mod tls;
pub mod token;

/// The version line printed by `vms-supervisor --version`.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("VMS_GIT_COMMIT"),
    ")"
);
