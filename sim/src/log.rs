//! MediaMTX-style log lines on stdout: `YYYY/MM/DD HH:MM:SS LVL message`, local time.

use std::io::Write;

#[derive(Clone, Copy)]
pub enum Level {
    Info,
    Warn,
    Error,
}

pub fn log(level: Level, msg: &str) {
    let lvl = match level {
        Level::Info => "INF",
        Level::Warn => "WAR",
        Level::Error => "ERR",
    };
    let now = chrono::Local::now().format("%Y/%m/%d %H:%M:%S");
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{now} {lvl} {msg}");
    let _ = out.flush();
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
pub(crate) use {error, info, warning};
