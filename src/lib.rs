//! vms-supervisor keeps 24/7 camera recording alive on an NVR box.
//!
//! # Layout
//!
//! * [`config`]: `/etc/vms/vms.toml`, parsed strictly and validated, with the
//!   seed's defaults. Every error names its key.
//! * [`mediamtx`]: the MediaMTX we own: its generated config file.
//! * [`events`]: the alert events that producers send to the alert pipeline.
//!
//! The binary (`src/main.rs`) parses the command line, loads the config and
//! decides the exit code (0 clean, 78 bad config, 1 anything else).

pub mod alerts;
pub mod config;
pub mod events;
pub mod mediamtx;
pub mod recordings;
pub mod supervisor;

/// The version line printed by `vms-supervisor --version`.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("VMS_GIT_COMMIT"),
    ")"
);
