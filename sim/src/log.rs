//! MediaMTX-style log lines on stdout: `YYYY/MM/DD HH:MM:SS LVL message`, local time.

use std::io::Write;
use std::sync::atomic::{AtomicU8, Ordering};

#[derive(Clone, Copy, PartialEq, PartialOrd)]
pub enum Level {
    Debug = 0,
    Info = 1,
    Warn = 2,
    Error = 3,
}

/// The `logLevel` in force (lines below it are not written).
static MIN_LEVEL: AtomicU8 = AtomicU8::new(Level::Info as u8);

/// Applies `logLevel` (`error`, `warn`, `info`, `debug`).
pub fn set_level(name: &str) {
    let l = match name {
        "debug" => Level::Debug,
        "warn" => Level::Warn,
        "error" => Level::Error,
        _ => Level::Info,
    };
    MIN_LEVEL.store(l as u8, Ordering::Relaxed);
}

pub fn log(level: Level, msg: &str) {
    if (level as u8) < MIN_LEVEL.load(Ordering::Relaxed) {
        return;
    }
    write_line(level, msg);
}

/// Writes a line whatever `logLevel` says (the sim's own lines that tests parse).
pub fn write_line(level: Level, msg: &str) {
    let lvl = match level {
        Level::Debug => "DEB",
        Level::Info => "INF",
        Level::Warn => "WAR",
        Level::Error => "ERR",
    };
    let now = chrono::Local::now().format("%Y/%m/%d %H:%M:%S");
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{now} {lvl} {msg}");
    let _ = out.flush();
}

macro_rules! debug {
    ($($t:tt)*) => { $crate::log::log($crate::log::Level::Debug, &format!($($t)*)) };
}
macro_rules! info {
    ($($t:tt)*) => { $crate::log::log($crate::log::Level::Info, &format!($($t)*)) };
}
macro_rules! error {
    ($($t:tt)*) => { $crate::log::log($crate::log::Level::Error, &format!($($t)*)) };
}
macro_rules! warning {
    ($($t:tt)*) => { $crate::log::log($crate::log::Level::Warn, &format!($($t)*)) };
}
pub(crate) use {debug, error, info, warning};
