//! Convergence of MediaMTX's running paths with the generated config, as a
//! decision: given the paths we want and the paths MediaMTX runs, which to
//! replace and which to delete. The driver fetches `/v3/config/paths/list`,
//! asks [`plan`], and executes the changes through the API.
//!
//! Drift happens: a path removed through the API and never re-created, a
//! crash in the middle of a recovery, a path added by hand. Paths under
//! recovery are left alone (the camera machine owns them until it is done).

use serde_json::Value;

/// One change to bring MediaMTX back to the config.
#[derive(Debug, Clone, PartialEq)]
pub enum PathChange {
    /// Create or replace the path with this config.
    Replace { name: String, conf: Value },
    /// Delete a camera path that is no longer configured.
    Delete { name: String },
}

/// What to change so that the running paths match `desired`.
///
/// * A desired path that is missing, or whose running config differs in a
///   key we set, is replaced (keys MediaMTX adds itself do not count).
/// * A running `cam_*` path that is not desired is deleted; other paths are
///   not ours.
/// * Paths in `busy` (under recovery) are not touched.
pub fn plan(
    desired: &[(String, Value)],
    running: &[(String, Value)],
    busy: &[String],
) -> Vec<PathChange> {
    let mut out = Vec::new();
    for (name, conf) in desired {
        if busy.contains(name) {
            continue;
        }
        let present = running.iter().find(|(n, _)| n == name);
        if present.is_none_or(|(_, have)| !subset(conf, have)) {
            out.push(PathChange::Replace {
                name: name.clone(),
                conf: conf.clone(),
            });
        }
    }
    for (name, _) in running {
        if crate::config::camera_of_path(name).is_some()
            && !busy.contains(name)
            && !desired.iter().any(|(n, _)| n == name)
        {
            out.push(PathChange::Delete { name: name.clone() });
        }
    }
    out
}

/// True when every key of `want` has the same value in `have` (MediaMTX's
/// answer carries every key, with its own formatting for some; only the keys
/// we set matter).
fn subset(want: &Value, have: &Value) -> bool {
    let (Some(want), Some(have)) = (want.as_object(), have.as_object()) else {
        return false;
    };
    want.iter().all(|(k, v)| match (v, have.get(k)) {
        (_, None) => false,
        (Value::String(a), Some(Value::String(b))) => a == b || same_duration(a, b),
        (a, Some(b)) => a == b,
    })
}

/// `"60s"` and `"1m0s"` are the same duration to MediaMTX (it answers in
/// Go's duration format whatever the file said).
fn same_duration(a: &str, b: &str) -> bool {
    matches!((seconds(a), seconds(b)), (Some(x), Some(y)) if (x - y).abs() < 1e-9)
}

/// A Go-style duration (`1h2m3.5s`, `250ms`, `2d`) in seconds.
fn seconds(s: &str) -> Option<f64> {
    let mut total = 0.0;
    let mut num = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let n: f64 = num.parse().ok()?;
        num.clear();
        total += match c {
            'h' => n * 3600.0,
            'm' if chars.peek() == Some(&'s') => {
                chars.next();
                n / 1000.0
            }
            'm' => n * 60.0,
            's' => n,
            'd' => n * 86400.0,
            _ => return None,
        };
    }
    num.is_empty().then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn durations_compare_as_mediamtx_reads_them() {
        assert!(same_duration("60s", "1m0s"));
        assert!(same_duration("2160h", "2160h0m0s"));
        assert!(same_duration("1s", "1000ms"));
        assert!(!same_duration("60s", "2m0s"));
        assert!(!same_duration("60x", "60s"));
    }

    #[test]
    fn subset_ignores_extra_keys_and_formatting() {
        let want = json!({"source": "rtsp://a", "record": true, "recordSegmentDuration": "60s"});
        let have = json!({"name": "cam_1", "source": "rtsp://a", "record": true, "recordSegmentDuration": "1m0s", "maxReaders": 0});
        assert!(subset(&want, &have));
        let other = json!({"source": "rtsp://b", "record": true, "recordSegmentDuration": "60s"});
        assert!(!subset(&other, &have));
    }

    #[test]
    fn plan_replaces_missing_and_drifted_deletes_strays_and_spares_busy_paths() {
        let conf = |src: &str| json!({"source": src, "record": true});
        let desired = vec![
            ("cam_1".to_string(), conf("rtsp://1")),
            ("cam_2".to_string(), conf("rtsp://2")),
            ("cam_3".to_string(), conf("rtsp://3")),
            ("cam_4".to_string(), conf("rtsp://4")),
        ];
        let running = vec![
            (
                "cam_1".to_string(),
                json!({"source": "rtsp://1", "record": true, "maxReaders": 0}),
            ),
            ("cam_2".to_string(), conf("rtsp://changed")),
            ("cam_9".to_string(), conf("rtsp://9")),
            ("mine".to_string(), conf("rtsp://x")),
        ];
        let busy = vec!["cam_4".to_string()];
        let changes = plan(&desired, &running, &busy);
        assert_eq!(
            changes,
            vec![
                PathChange::Replace {
                    name: "cam_2".into(),
                    conf: conf("rtsp://2")
                },
                PathChange::Replace {
                    name: "cam_3".into(),
                    conf: conf("rtsp://3")
                },
                PathChange::Delete {
                    name: "cam_9".into()
                },
            ]
        );
        assert!(plan(&desired[..1], &running[..1], &[]).is_empty());
    }
}
