//! The integration tests: one binary, one module per area. They run the real
//! `vms-supervisor` binary (and, for the daemon, the `mediamtx-sim` stand-in).

mod acceptance;
mod access;
mod adopt;
mod alerting;
mod alerts;
mod api;
mod backup;
mod bench;
mod config_cli;
mod daemon;
mod dashboard;
mod export;
mod fleet;
mod harness;
mod latency;
mod modules;
mod monitor;
mod monitoring;
mod openapi;
mod render;
mod scrape;
mod soak;
mod storage;
mod survive;
mod tls;
