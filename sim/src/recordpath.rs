//! recordPath templates: expanding them into segment file names, and decoding file names
//! back into start times (the recordings API, the playback server and the cleaner all
//! judge a segment by the start time in its name, as MediaMTX does).

use chrono::{DateTime, FixedOffset, Local, NaiveDate, Offset, TimeZone};
use std::path::{Path, PathBuf};

/// Expands a recordPath for a segment starting at `t`, and appends the extension.
pub fn expand<Tz: TimeZone>(pattern: &str, path_name: &str, t: DateTime<Tz>, ext: &str) -> String
where
    Tz::Offset: std::fmt::Display,
{
    let mut out = String::new();
    let mut rest = pattern;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        if let Some(r) = rest.strip_prefix("%path") {
            out.push_str(path_name);
            rest = r;
            continue;
        }
        let code = rest.chars().nth(1);
        let v = match code {
            Some('Y') => t.format("%Y").to_string(),
            Some('m') => t.format("%m").to_string(),
            Some('d') => t.format("%d").to_string(),
            Some('H') => t.format("%H").to_string(),
            Some('M') => t.format("%M").to_string(),
            Some('S') => t.format("%S").to_string(),
            Some('f') => format!("{:06}", t.timestamp_subsec_micros()),
            Some('s') => format!("{:010}", t.timestamp()),
            Some('z') => {
                let off = t.offset().fix().local_minus_utc();
                if off == 0 {
                    "Z".into()
                } else {
                    let sign = if off < 0 { '-' } else { '+' };
                    let a = off.abs();
                    format!("{sign}{:02}{:02}", a / 3600, (a % 3600) / 60)
                }
            }
            _ => {
                out.push('%');
                rest = &rest[1..];
                continue;
            }
        };
        out.push_str(&v);
        rest = &rest[2..];
    }
    out.push_str(rest);
    out.push_str(ext);
    out
}

/// The directory the cleaner and the listings walk: the fixed part of the pattern before
/// the first `%`, cut back to its last `/`.
pub fn walk_root(pattern: &str) -> String {
    let fixed = &pattern[..pattern.find('%').unwrap_or(pattern.len())];
    match fixed.rfind('/') {
        Some(i) => fixed[..=i].to_string(),
        None => "./".to_string(),
    }
}

#[derive(Default)]
struct Fields {
    y: Option<i32>,
    mo: Option<u32>,
    d: Option<u32>,
    h: Option<u32>,
    mi: Option<u32>,
    s: Option<u32>,
    f: u32,
    unix: Option<i64>,
    off: Option<i32>,
}

fn take_digits(s: &str, n: usize) -> Option<(&str, &str)> {
    if s.len() >= n && s.as_bytes()[..n].iter().all(u8::is_ascii_digit) {
        Some((&s[..n], &s[n..]))
    } else {
        None
    }
}

/// Decodes a file path against an expanded-for-this-path pattern (with extension).
pub fn decode(
    pattern: &str,
    path_name: &str,
    file: &str,
    ext: &str,
) -> Option<DateTime<FixedOffset>> {
    let pattern = format!("{}{}", pattern.replace("%path", path_name), ext);
    let pat = norm(&pattern);
    let mut p = pat;
    let mut s = norm(file);
    let mut fl = Fields::default();
    while !p.is_empty() {
        if p.starts_with('%') && p.len() >= 2 {
            let code = &p[1..2];
            p = &p[2..];
            match code {
                "Y" => {
                    let (v, r) = take_digits(s, 4)?;
                    fl.y = Some(v.parse().ok()?);
                    s = r;
                }
                "m" | "d" | "H" | "M" | "S" => {
                    let (v, r) = take_digits(s, 2)?;
                    let v: u32 = v.parse().ok()?;
                    match code {
                        "m" => fl.mo = Some(v),
                        "d" => fl.d = Some(v),
                        "H" => fl.h = Some(v),
                        "M" => fl.mi = Some(v),
                        _ => fl.s = Some(v),
                    }
                    s = r;
                }
                "f" => {
                    let (v, r) = take_digits(s, 6)?;
                    fl.f = v.parse().ok()?;
                    s = r;
                }
                "s" => {
                    let n = s.bytes().take_while(u8::is_ascii_digit).count();
                    if n == 0 {
                        return None;
                    }
                    fl.unix = Some(s[..n].parse().ok()?);
                    s = &s[n..];
                }
                "z" => {
                    if let Some(r) = s.strip_prefix('Z') {
                        fl.off = Some(0);
                        s = r;
                    } else {
                        let sign = match s.chars().next()? {
                            '+' => 1,
                            '-' => -1,
                            _ => return None,
                        };
                        let (v, r) = take_digits(&s[1..], 4)?;
                        let h: i32 = v[..2].parse().ok()?;
                        let m: i32 = v[2..].parse().ok()?;
                        fl.off = Some(sign * (h * 3600 + m * 60));
                        s = r;
                    }
                }
                _ => {
                    s = s.strip_prefix('%')?.strip_prefix(code)?;
                }
            }
        } else {
            let c = p.chars().next()?;
            s = s.strip_prefix(c)?;
            p = &p[c.len_utf8()..];
        }
    }
    if !s.is_empty() {
        return None;
    }
    if let Some(u) = fl.unix {
        let t = DateTime::from_timestamp(u, fl.f * 1000)?;
        let off = match fl.off {
            Some(o) => FixedOffset::east_opt(o)?,
            None => *t.with_timezone(&Local).offset(),
        };
        return Some(t.with_timezone(&off));
    }
    let naive = NaiveDate::from_ymd_opt(fl.y?, fl.mo?, fl.d?)?
        .and_hms_micro_opt(fl.h?, fl.mi?, fl.s?, fl.f)?;
    match fl.off {
        Some(o) => FixedOffset::east_opt(o)?
            .from_local_datetime(&naive)
            .single(),
        None => Local
            .from_local_datetime(&naive)
            .earliest()
            .map(|t| t.fixed_offset()),
    }
}

fn norm(s: &str) -> &str {
    s.strip_prefix("./").unwrap_or(s)
}

/// All segment files of a path, sorted by start time.
pub fn list_segments(
    pattern: &str,
    path_name: &str,
    ext: &str,
) -> Vec<(PathBuf, DateTime<FixedOffset>)> {
    let root = walk_root(&pattern.replace("%path", path_name));
    let mut files = Vec::new();
    walk(Path::new(&root), &mut files);
    let mut out: Vec<_> = files
        .into_iter()
        .filter_map(|f| {
            let s = f.to_str()?.to_string();
            decode(pattern, path_name, &s, ext).map(|t| (f, t))
        })
        .collect();
    out.sort_by_key(|(_, t)| *t);
    out
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => walk(&p, out),
            Ok(t) if t.is_file() => out.push(p),
            _ => {}
        }
    }
}

/// Removes empty directories below `dir` (not `dir` itself).
pub fn remove_empty_dirs(dir: &Path) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            let p = e.path();
            remove_empty_dirs(&p);
            let _ = std::fs::remove_dir(&p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expand_then_decode() {
        let t = Local.with_ymd_and_hms(2026, 8, 22, 10, 0, 5).unwrap()
            + chrono::Duration::microseconds(123456);
        let pat = "./rec/%path/%Y-%m-%d_%H-%M-%S-%f";
        let f = expand(pat, "g/cam1", t, ".mp4");
        assert_eq!(f, "./rec/g/cam1/2026-08-22_10-00-05-123456.mp4");
        assert_eq!(decode(pat, "g/cam1", &f, ".mp4").unwrap(), t.fixed_offset());
        assert_eq!(decode(pat, "g/cam1", "rec/g/cam1/x.mp4", ".mp4"), None);
        let pat2 = "/r/%path/%s-%f-%z";
        let f2 = expand(pat2, "c", t, ".mp4");
        assert_eq!(
            decode(pat2, "c", &f2, ".mp4").unwrap().timestamp_micros(),
            t.timestamp_micros()
        );
        assert_eq!(walk_root("/r/%path/x"), "/r/");
        assert_eq!(walk_root("./recordings/c/%Y"), "./recordings/c/");
    }
}
