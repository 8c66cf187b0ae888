//! Human-friendly value types used in `vms.toml`: durations (`"30s"`, `"2m"`,
//! `"90d"`), byte sizes (`"512MiB"`) and secrets that never print themselves.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// A duration written as a number with a unit: `ms`, `s`, `m`, `h` or `d`
/// (for example `"500ms"`, `"30s"`, `"2m"`, `"1h"`, `"90d"`). Compound values
/// such as `"1m30s"` are accepted too.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Span(pub Duration);

impl Span {
    pub const fn secs(s: u64) -> Span {
        Span(Duration::from_secs(s))
    }
    pub const fn millis(ms: u64) -> Span {
        Span(Duration::from_millis(ms))
    }
    pub fn get(self) -> Duration {
        self.0
    }
    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }

    /// Parses `"30s"`, `"1m30s"`, `"250ms"`, `"2d"`.
    pub fn parse(text: &str) -> Result<Span, String> {
        let s = text.trim();
        if s.is_empty() {
            return Err("empty duration; write e.g. \"30s\", \"2m\" or \"1h\"".into());
        }
        let mut total = Duration::ZERO;
        let mut rest = s;
        while !rest.is_empty() {
            let digits = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            if digits == 0 {
                return Err(format!("invalid duration {text:?}: expected a number"));
            }
            let n: u64 = rest[..digits]
                .parse()
                .map_err(|_| format!("invalid duration {text:?}: number too large"))?;
            rest = &rest[digits..];
            let unit_len = rest
                .find(|c: char| c.is_ascii_digit())
                .unwrap_or(rest.len());
            let unit = &rest[..unit_len];
            rest = &rest[unit_len..];
            let part = match unit {
                "ms" => Duration::from_millis(n),
                "s" => Duration::from_secs(n),
                "m" => Duration::from_secs(n.saturating_mul(60)),
                "h" => Duration::from_secs(n.saturating_mul(3600)),
                "d" => Duration::from_secs(n.saturating_mul(86_400)),
                "" => {
                    return Err(format!(
                        "invalid duration {text:?}: missing unit (ms, s, m, h or d)"
                    ))
                }
                other => {
                    return Err(format!(
                        "invalid duration {text:?}: unknown unit {other:?} (use ms, s, m, h or d)"
                    ))
                }
            };
            total = total.saturating_add(part);
        }
        Ok(Span(total))
    }

    /// Formats the duration as MediaMTX (Go's `time.ParseDuration`) reads it:
    /// `"60s"`, `"2160h"`, `"1500ms"`, `"0s"`. Whole hours are written in
    /// hours, whole seconds in seconds, anything else in milliseconds.
    pub fn to_go(self) -> String {
        let ms = self.0.as_millis();
        if ms == 0 {
            "0s".into()
        } else if ms % 3_600_000 == 0 {
            format!("{}h", ms / 3_600_000)
        } else if ms % 1000 == 0 {
            format!("{}s", ms / 1000)
        } else {
            format!("{ms}ms")
        }
    }
}

impl fmt::Debug for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms == 0 {
            return f.write_str("0s");
        }
        for (unit, size) in [("d", 86_400_000u128), ("h", 3_600_000), ("m", 60_000)] {
            if ms % size == 0 {
                return write!(f, "{}{unit}", ms / size);
            }
        }
        if ms % 1000 == 0 {
            write!(f, "{}s", ms / 1000)
        } else {
            write!(f, "{ms}ms")
        }
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Span::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A size in bytes written with a unit: `"512MiB"`, `"2GiB"`, `"800MB"`, or
/// `"0"` for "no limit".
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Bytes(pub u64);

impl Bytes {
    pub fn parse(text: &str) -> Result<Bytes, String> {
        let s = text.trim();
        let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        if digits == 0 {
            return Err(format!("invalid size {text:?}: expected e.g. \"512MiB\""));
        }
        let n: u64 = s[..digits]
            .parse()
            .map_err(|_| format!("invalid size {text:?}: number too large"))?;
        let mult: u64 = match s[digits..].trim() {
            "" | "B" => 1,
            "KB" => 1000,
            "MB" => 1000 * 1000,
            "GB" => 1000 * 1000 * 1000,
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            other => {
                return Err(format!(
                    "invalid size {text:?}: unknown unit {other:?} (use B, KB, MB, GB, KiB, MiB or GiB)"
                ))
            }
        };
        n.checked_mul(mult)
            .map(Bytes)
            .ok_or_else(|| format!("invalid size {text:?}: too large"))
    }
}

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        if b != 0 && b % (1 << 30) == 0 {
            write!(f, "{}GiB", b >> 30)
        } else if b != 0 && b % (1 << 20) == 0 {
            write!(f, "{}MiB", b >> 20)
        } else {
            write!(f, "{b}B")
        }
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Bytes::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A secret value (bot token, password, access key). `Debug` and `Display`
/// print `MASKED`; the only way to read it is [`Secret::expose`], so a secret
/// cannot reach a log line by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MASKED")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MASKED")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_parse_and_print() {
        for (text, ms, go) in [
            ("30s", 30_000, "30s"),
            ("2m", 120_000, "120s"),
            ("1m30s", 90_000, "90s"),
            ("250ms", 250, "250ms"),
            ("90d", 90 * 86_400_000, "2160h"),
            ("0s", 0, "0s"),
        ] {
            let span = Span::parse(text).unwrap();
            assert_eq!(span.0.as_millis(), ms, "{text}");
            assert_eq!(span.to_go(), go, "{text}");
        }
        assert_eq!(Span::secs(120).to_string(), "2m");
        assert_eq!(Span::secs(90).to_string(), "90s");
    }

    #[test]
    fn bad_spans_say_why() {
        assert!(Span::parse("30").unwrap_err().contains("missing unit"));
        assert!(Span::parse("3x").unwrap_err().contains("unknown unit"));
        assert!(Span::parse("s").unwrap_err().contains("expected a number"));
        assert!(Span::parse("").unwrap_err().contains("empty"));
    }

    #[test]
    fn sizes() {
        assert_eq!(Bytes::parse("512MiB").unwrap().0, 512 << 20);
        assert_eq!(Bytes::parse("2GB").unwrap().0, 2_000_000_000);
        assert_eq!(Bytes::parse("0").unwrap().0, 0);
        assert!(Bytes::parse("12 parsecs").is_err());
        assert_eq!(Bytes(3 << 30).to_string(), "3GiB");
    }

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("123456:ABC-token");
        assert_eq!(format!("{s:?} {s}"), "MASKED MASKED");
        assert_eq!(s.expose(), "123456:ABC-token");
    }
}
