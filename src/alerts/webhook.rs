//! Alertmanager's webhook payload (version 4) to [`AlertEvent`]s.
//!
//! One request carries a group of alerts, each firing or resolved. Every
//! alert becomes one event:
//!
//! * severity from the label `severity` (`critical`/`error`/`page` →
//!   Critical, `warning`/`warn` → Warning, `info`/`none` → Info; missing or
//!   unknown → Warning: someone wrote the rule, so it is shown on the
//!   dashboard, but only an explicit `critical` pages);
//! * camera from the labels `camera_id` (a number) and `camera_name`;
//! * dedup key `external:<alertname>:<label=value,...>` with the other labels
//!   sorted, so a firing and its resolved share one key;
//! * time: `startsAt` when firing, `endsAt` when resolved;
//! * details: the `summary` annotation (else the alert name), then the
//!   `description`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::events::{AlertEvent, CameraRef, Issue, Phase, Severity};

/// The longest alert text kept from a webhook (summary and description
/// together): a Telegram message holds 4096 characters, and the box's own
/// texts need room beside it. Longer texts are cut, with an ellipsis.
pub const MAX_DETAILS_CHARS: usize = 1000;

/// The most alerts one request may carry (Alertmanager's groups are far
/// smaller; anything larger is a mistake).
pub const MAX_ALERTS: usize = 500;

/// Why a payload was rejected (the API answers 400 with this text).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WebhookError(pub String);

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Payload {
    version: Option<String>,
    alerts: Option<Vec<Alert>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Alert {
    status: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    starts_at: Option<String>,
    ends_at: Option<String>,
}

/// Parses a webhook body into events, or says what is wrong with it.
pub fn parse(body: &[u8]) -> Result<Vec<AlertEvent>, WebhookError> {
    let err = |m: String| Err(WebhookError(m));
    if body.iter().all(u8::is_ascii_whitespace) {
        return err("empty body: expected Alertmanager's webhook JSON".into());
    }
    let payload: Payload =
        serde_json::from_slice(body).map_err(|e| WebhookError(format!("invalid JSON: {e}")))?;
    match payload.version.as_deref() {
        Some("4") => {}
        Some(v) => return err(format!("unsupported payload version {v:?}; expected \"4\"")),
        None => {
            return err("missing \"version\"; expected Alertmanager's payload version \"4\"".into())
        }
    }
    let Some(alerts) = payload.alerts else {
        return err("missing \"alerts\"".into());
    };
    let now = Utc::now();
    if alerts.len() > MAX_ALERTS {
        return err(format!(
            "{} alerts in one request; at most {MAX_ALERTS}",
            alerts.len()
        ));
    }
    let mut events = Vec::with_capacity(alerts.len());
    for (i, a) in alerts.into_iter().enumerate() {
        let at_key = |k: &str| format!("alerts[{i}].{k}");
        let phase = match a.status.as_deref() {
            Some("firing") => Phase::Firing,
            Some("resolved") => Phase::Resolved,
            Some(s) => {
                return err(format!(
                    "{}: {s:?} is neither \"firing\" nor \"resolved\"",
                    at_key("status")
                ))
            }
            None => return err(format!("{} is missing", at_key("status"))),
        };
        let Some(alertname) = a.labels.get("alertname").filter(|n| !n.trim().is_empty()) else {
            return err(format!("{} is missing", at_key("labels.alertname")));
        };
        let time_field = if phase == Phase::Firing {
            "startsAt"
        } else {
            "endsAt"
        };
        let raw_time = if phase == Phase::Firing {
            &a.starts_at
        } else {
            &a.ends_at
        };
        let at = match raw_time.as_deref() {
            None | Some("") => now,
            Some(t) => match DateTime::parse_from_rfc3339(t) {
                // Go's zero time means "unset".
                Ok(t) if t.timestamp() <= 0 => now,
                Ok(t) => t.with_timezone(&Utc),
                Err(e) => {
                    return err(format!(
                        "{}: {t:?} is not an RFC 3339 time: {e}",
                        at_key(time_field)
                    ))
                }
            },
        };
        let severity = match a
            .labels
            .get("severity")
            .map(|s| s.to_ascii_lowercase())
            .as_deref()
        {
            Some("critical" | "error" | "page") => Severity::Critical,
            Some("info" | "none") => Severity::Info,
            _ => Severity::Warning,
        };
        let camera = a
            .labels
            .get("camera_id")
            .and_then(|id| id.trim().parse::<u32>().ok())
            .map(|id| CameraRef {
                id,
                name: a.labels.get("camera_name").cloned().unwrap_or_default(),
            });
        let rest: Vec<String> = a
            .labels
            .iter()
            .filter(|(k, _)| k.as_str() != "alertname")
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let key = format!("external:{alertname}:{}", rest.join(","));
        let summary = a
            .annotations
            .get("summary")
            .filter(|s| !s.trim().is_empty())
            .cloned()
            .unwrap_or_else(|| alertname.clone());
        let details = match a
            .annotations
            .get("description")
            .filter(|d| !d.trim().is_empty())
        {
            Some(d) => format!("{summary} ({d})"),
            None => summary,
        };
        let details = if details.chars().count() > MAX_DETAILS_CHARS {
            let mut cut: String = details.chars().take(MAX_DETAILS_CHARS - 1).collect();
            cut.push('…');
            cut
        } else {
            details
        };
        events.push(AlertEvent {
            at,
            severity,
            phase,
            key,
            issue: Issue::External,
            camera,
            recovery_attempts: 0,
            last_recording: None,
            details,
        });
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A firing group as Alertmanager 0.25 (Debian bookworm) posts it for the
    /// CameraOffline rule of docs/design.md §7.4.
    const FIRING: &str = r#"{
      "receiver": "vms",
      "status": "firing",
      "alerts": [
        {
          "status": "firing",
          "labels": {"alertname": "CameraOffline", "camera_id": "5", "camera_name": "Portaria Principal",
                     "instance": "localhost:8000", "job": "vms", "severity": "critical"},
          "annotations": {"description": "Câmera ID 5 está offline há mais de 1 minuto",
                          "summary": "Câmera Portaria Principal offline"},
          "startsAt": "2026-01-05T17:35:22.123Z",
          "endsAt": "0001-01-01T00:00:00Z",
          "generatorURL": "http://prometheus:9090/graph?g0.expr=vms_camera_status+%3D%3D+0",
          "fingerprint": "c1f0e6a5d1e2b3a4"
        },
        {
          "status": "firing",
          "labels": {"alertname": "DiskAlmostFull", "mount_point": "/var/lib/vms", "severity": "warning"},
          "annotations": {"summary": "Disco quase cheio: 87%"},
          "startsAt": "2026-01-05T17:30:00Z",
          "endsAt": "0001-01-01T00:00:00Z",
          "generatorURL": "",
          "fingerprint": "aa"
        }
      ],
      "groupLabels": {"alertname": "CameraOffline", "camera_id": "5"},
      "commonLabels": {"job": "vms"},
      "commonAnnotations": {},
      "externalURL": "http://alertmanager:9093",
      "version": "4",
      "groupKey": "{}:{alertname=\"CameraOffline\", camera_id=\"5\"}",
      "truncatedAlerts": 0
    }"#;

    const RESOLVED: &str = r#"{
      "receiver": "vms", "status": "resolved", "version": "4", "truncatedAlerts": 0,
      "groupKey": "{}:{alertname=\"CameraOffline\", camera_id=\"5\"}",
      "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {}, "externalURL": "",
      "alerts": [{
        "status": "resolved",
        "labels": {"severity": "critical", "job": "vms", "instance": "localhost:8000",
                   "camera_name": "Portaria Principal", "camera_id": "5", "alertname": "CameraOffline"},
        "annotations": {"summary": "Câmera Portaria Principal offline"},
        "startsAt": "2026-01-05T17:35:22.123Z",
        "endsAt": "2026-01-05T17:50:00Z",
        "generatorURL": "", "fingerprint": "c1f0e6a5d1e2b3a4"
      }]
    }"#;

    #[test]
    fn firing_group() {
        let events = parse(FIRING.as_bytes()).unwrap();
        assert_eq!(events.len(), 2);
        let e = &events[0];
        assert_eq!(e.phase, Phase::Firing);
        assert_eq!(e.severity, Severity::Critical);
        assert_eq!(e.issue, Issue::External);
        assert_eq!(
            e.camera,
            Some(CameraRef {
                id: 5,
                name: "Portaria Principal".into()
            })
        );
        assert_eq!(e.at.to_rfc3339(), "2026-01-05T17:35:22.123+00:00");
        assert_eq!(
            e.key,
            "external:CameraOffline:camera_id=5,camera_name=Portaria Principal,instance=localhost:8000,job=vms,severity=critical"
        );
        assert_eq!(
            e.details,
            "Câmera Portaria Principal offline (Câmera ID 5 está offline há mais de 1 minuto)"
        );
        let d = &events[1];
        assert_eq!(d.severity, Severity::Warning);
        assert_eq!(d.camera, None);
        assert_eq!(d.details, "Disco quase cheio: 87%");
    }

    #[test]
    fn resolved_shares_the_firing_key_whatever_the_label_order() {
        let firing = parse(FIRING.as_bytes()).unwrap();
        let resolved = parse(RESOLVED.as_bytes()).unwrap();
        assert_eq!(resolved[0].phase, Phase::Resolved);
        assert_eq!(resolved[0].key, firing[0].key);
        assert_eq!(resolved[0].at.to_rfc3339(), "2026-01-05T17:50:00+00:00");
    }

    #[test]
    fn severities() {
        for (label, sev) in [
            ("critical", Severity::Critical),
            ("CRITICAL", Severity::Critical),
            ("page", Severity::Critical),
            ("warning", Severity::Warning),
            ("info", Severity::Info),
            ("whatever", Severity::Warning),
        ] {
            let body = format!(
                r#"{{"version":"4","alerts":[{{"status":"firing","labels":{{"alertname":"A","severity":"{label}"}}}}]}}"#
            );
            assert_eq!(parse(body.as_bytes()).unwrap()[0].severity, sev, "{label}");
        }
        let body = r#"{"version":"4","alerts":[{"status":"firing","labels":{"alertname":"A"}}]}"#;
        assert_eq!(
            parse(body.as_bytes()).unwrap()[0].severity,
            Severity::Warning
        );
    }

    #[test]
    fn a_camera_id_that_is_not_a_number_is_no_camera() {
        let body = r#"{"version":"4","alerts":[{"status":"firing","labels":{"alertname":"A","camera_id":"all"}}]}"#;
        let e = &parse(body.as_bytes()).unwrap()[0];
        assert_eq!(e.camera, None);
        assert_eq!(e.key, "external:A:camera_id=all");
    }

    #[test]
    fn malformed_payloads_say_what_is_wrong() {
        let cases: &[(&str, &str)] = &[
            ("", "empty body"),
            ("not json", "invalid JSON"),
            (r#"{"alerts":[]}"#, "missing \"version\""),
            (
                r#"{"version":"3","alerts":[]}"#,
                "unsupported payload version \"3\"",
            ),
            (r#"{"version":"4"}"#, "missing \"alerts\""),
            (r#"{"version":"4","alerts":{}}"#, "invalid JSON"),
            (
                r#"{"version":"4","alerts":[{"labels":{"alertname":"A"}}]}"#,
                "alerts[0].status is missing",
            ),
            (
                r#"{"version":"4","alerts":[{"status":"pending","labels":{"alertname":"A"}}]}"#,
                "alerts[0].status: \"pending\" is neither",
            ),
            (
                r#"{"version":"4","alerts":[{"status":"firing","labels":{}}]}"#,
                "alerts[0].labels.alertname is missing",
            ),
            (
                r#"{"version":"4","alerts":[{"status":"firing","labels":{"alertname":"A"},"startsAt":"yesterday"}]}"#,
                "alerts[0].startsAt: \"yesterday\" is not an RFC 3339 time",
            ),
        ];
        for (body, want) in cases {
            let got = parse(body.as_bytes()).unwrap_err().0;
            assert!(got.contains(want), "{body}: got {got:?}, want {want:?}");
        }
    }

    #[test]
    fn empty_group_is_valid() {
        assert!(parse(br#"{"version":"4","alerts":[]}"#).unwrap().is_empty());
    }

    /// Regression: the webhook accepted an alert text of any size.
    #[test]
    fn webhook_alert_text_is_bounded() {
        let long = "x".repeat(50_000);
        let body = format!(
            r#"{{"version": "4", "alerts": [{{"status": "firing", "labels": {{"alertname": "A"}},
               "annotations": {{"summary": "{long}"}}, "startsAt": "2026-01-05T17:35:22Z"}}]}}"#
        );
        let events = parse(body.as_bytes()).unwrap();
        assert_eq!(events[0].details.chars().count(), MAX_DETAILS_CHARS);
        assert!(events[0].details.ends_with('…'));
        let many = format!(
            r#"{{"version": "4", "alerts": [{}]}}"#,
            vec![r#"{"status": "firing", "labels": {"alertname": "A"}}"#; MAX_ALERTS + 1].join(",")
        );
        assert!(parse(many.as_bytes()).unwrap_err().0.contains("at most"));
    }
}
