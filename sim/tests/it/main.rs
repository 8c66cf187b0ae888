//! Integration tests of `mediamtx-sim`: each test starts the built binary in its own temp
//! dir, with every listener on port 0 (the sim reports the bound ports on `/state`).

mod api;
mod auth;
mod browser;
mod faults;
mod harness;
mod live;
mod process;
mod recorder;
mod surprises;
