//! MediaMTX's own log lines: parsed, mapped to our levels and fields, and
//! rate-limited so that a flood of one repeated line cannot fill the journal
//! (MediaMTX issue #6160 wrote a 17.5 GB log of "sample received too late").
//!
//! Lines look like `2026/08/22 10:00:00 INF [path cam_1] [RTSP source] started`
//! (docs/mediamtx.md §g), or `ERR: <message>` for a startup config error.

use std::collections::HashMap;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub level: Level,
    /// `cam_1` when the line is about a path.
    pub path: Option<String>,
    pub message: String,
}

/// What a line says about a camera's stream, for the monitor's fast path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSignal {
    Available(String),
    Unavailable(String),
}

pub fn parse(raw: &str) -> Line {
    let raw = raw.trim_end();
    if let Some(rest) = raw.strip_prefix("ERR: ") {
        return Line {
            level: Level::Error,
            path: None,
            message: rest.to_string(),
        };
    }
    // Skip "YYYY/MM/DD HH:MM:SS ".
    let mut rest = raw;
    let mut parts = raw.splitn(4, ' ');
    let (date, time, level) = (parts.next(), parts.next(), parts.next());
    let level = match (date, time, level) {
        (Some(d), Some(t), Some(l)) if d.contains('/') && t.contains(':') => {
            rest = parts.next().unwrap_or("");
            match l {
                "DEB" => Level::Debug,
                "INF" => Level::Info,
                "WAR" => Level::Warn,
                "ERR" => Level::Error,
                _ => Level::Info,
            }
        }
        // Not MediaMTX's log format: the Go runtime's own output. A panic or
        // a fatal error is the last thing MediaMTX says before it dies, and
        // the goroutine dump after it belongs with it.
        _ if is_crash_line(raw) => Level::Error,
        _ => Level::Info,
    };
    let path = rest
        .strip_prefix("[path ")
        .and_then(|r| r.split(']').next())
        .map(str::to_string);
    Line {
        level,
        path,
        message: rest.to_string(),
    }
}

/// A line of the Go runtime's crash output (a panic, a fatal error, or a
/// goroutine of the dump that follows them).
fn is_crash_line(raw: &str) -> bool {
    raw.starts_with("panic: ")
        || raw.starts_with("fatal error: ")
        || raw.starts_with("goroutine ")
        || raw.starts_with("runtime: ")
        || raw.starts_with("[signal ")
}

/// Stream (un)availability announced by a line, if any.
pub fn path_signal(line: &Line) -> Option<PathSignal> {
    let path = line.path.clone()?;
    let m = &line.message;
    if m.contains("stream is available") || m.contains("stream is ready") {
        return Some(PathSignal::Available(path));
    }
    // A source error: the path has just been torn down (docs/mediamtx.md §g, §e).
    if line.level == Level::Error && m.contains(" source]") {
        return Some(PathSignal::Unavailable(path));
    }
    None
}

/// What to do with one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Emit,
    /// Emit, then say that `suppressed` similar lines were dropped before it.
    EmitWithSummary {
        suppressed: u64,
    },
    Drop,
}

/// Two limits: at most `per_second` lines a second overall, and a line whose
/// shape (digits removed) repeats more than `repeats` times a minute is
/// dropped until the minute ends, then summarised.
pub struct RateLimiter {
    per_second: u32,
    repeats: u32,
    window_start: Option<Instant>,
    in_window: u32,
    dropped_total: u64,
    shapes: HashMap<String, (Instant, u32, u64)>,
}

impl RateLimiter {
    pub fn new(per_second: u32) -> RateLimiter {
        RateLimiter {
            per_second,
            repeats: 10,
            window_start: None,
            in_window: 0,
            dropped_total: 0,
            shapes: HashMap::new(),
        }
    }

    pub fn dropped_total(&self) -> u64 {
        self.dropped_total
    }

    pub fn check(&mut self, now: Instant, message: &str) -> Verdict {
        let shape: String = message.chars().filter(|c| !c.is_ascii_digit()).collect();
        if self.shapes.len() > 10_000 {
            self.shapes
                .retain(|_, (start, _, _)| now.duration_since(*start) < Duration::from_secs(60));
        }
        let entry = self.shapes.entry(shape).or_insert((now, 0, 0));
        let mut summary = 0;
        if now.duration_since(entry.0) >= Duration::from_secs(60) {
            summary = entry.2;
            *entry = (now, 0, 0);
        }
        entry.1 += 1;
        if entry.1 > self.repeats {
            entry.2 += 1;
            self.dropped_total += 1;
            return Verdict::Drop;
        }
        if self
            .window_start
            .is_none_or(|s| now.duration_since(s) >= Duration::from_secs(1))
        {
            self.window_start = Some(now);
            self.in_window = 0;
        }
        self.in_window += 1;
        if self.in_window > self.per_second {
            self.dropped_total += 1;
            return Verdict::Drop;
        }
        if summary > 0 {
            Verdict::EmitWithSummary {
                suppressed: summary,
            }
        } else {
            Verdict::Emit
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mediamtx_lines() {
        let l = parse(
            "2026/08/22 10:00:00 INF [path cam_1] stream is available and online, 1 track (H264)",
        );
        assert_eq!(l.level, Level::Info);
        assert_eq!(l.path.as_deref(), Some("cam_1"));
        assert_eq!(path_signal(&l), Some(PathSignal::Available("cam_1".into())));
        let l = parse("2026/08/22 10:00:11 ERR [path cam_7] [RTSP source] TCP timeout");
        assert_eq!(l.level, Level::Error);
        assert_eq!(
            path_signal(&l),
            Some(PathSignal::Unavailable("cam_7".into()))
        );
        let l = parse("2026/08/22 10:00:11 WAR [path cam_7] [RTSP source] 12 RTP packets lost");
        assert_eq!(l.level, Level::Warn);
        assert_eq!(path_signal(&l), None);
        let l = parse("ERR: 'recordPath' must contain %path");
        assert_eq!(l.level, Level::Error);
        assert_eq!(l.message, "'recordPath' must contain %path");
        let l = parse(
            "2026/08/22 10:00:00 INF [API] started with listener on 127.0.0.1:9997 (TCP/HTTP)",
        );
        assert_eq!(l.path, None);
        assert!(l.message.starts_with("[API]"));
    }

    #[test]
    fn a_flood_of_one_line_is_capped_and_summarised() {
        let mut r = RateLimiter::new(20);
        let t0 = Instant::now();
        let mut emitted = 0;
        // 1000 lines a second for 10 minutes.
        for i in 0..600_000u64 {
            let now = t0 + Duration::from_millis(i);
            let msg = format!("[path cam_1] [RTSP source] sample {} received too late", i);
            if r.check(now, &msg) != Verdict::Drop {
                emitted += 1;
            }
        }
        assert!(
            emitted <= 10 * 10 + 10,
            "{emitted} lines emitted out of 600000"
        );
        assert!(r.dropped_total() >= 599_000);
    }

    #[test]
    fn the_summary_comes_with_the_next_window() {
        let mut r = RateLimiter::new(100);
        let t0 = Instant::now();
        for i in 0..50 {
            r.check(t0 + Duration::from_millis(i * 100), "same thing 1");
        }
        let v = r.check(t0 + Duration::from_secs(61), "same thing 2");
        assert_eq!(v, Verdict::EmitWithSummary { suppressed: 40 });
    }

    #[test]
    fn varied_lines_pass_up_to_the_budget() {
        let mut r = RateLimiter::new(20);
        let t0 = Instant::now();
        let passed = (0..30)
            .filter(|i| {
                r.check(t0, &format!("line kind {}", char::from(b'a' + *i as u8))) != Verdict::Drop
            })
            .count();
        assert_eq!(passed, 20);
    }

    /// Regression: the MediaMTX child's panic was forwarded at INFO.
    #[test]
    fn a_go_panic_is_an_error() {
        for line in [
            "panic: runtime error: invalid memory address or nil pointer dereference",
            "fatal error: concurrent map writes",
            "goroutine 1 [running]:",
            "[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x4a1b2c]",
        ] {
            assert_eq!(parse(line).level, Level::Error, "{line}");
        }
        assert_eq!(parse("main.main()").level, Level::Info);
    }
}
