//! The integration tests: one binary, one module per area. They run the real
//! `vms-supervisor` binary (and, for the daemon, the `mediamtx-sim` stand-in).

mod alerts;
mod config_cli;
mod monitoring;
mod render;
mod util;
