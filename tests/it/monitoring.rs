//! The monitoring bundle (`monitoring/`): the Prometheus config and alert
//! rules, the Alertmanager config, the Grafana dashboards and the compose
//! file, checked with the real `promtool` and `amtool` (Debian packages
//! `prometheus` and `prometheus-alertmanager`, installed by `scripts/setup`).
//!
//! Also home of [`TestPrometheus`], a real Prometheus server for tests that
//! scrape the running daemon and `mediamtx-sim`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value as Json;
use serde_norway::Value as Yaml;

use crate::harness::files::repo;
use crate::harness::http;

pub(crate) fn monitoring() -> PathBuf {
    repo().join("monitoring")
}

/// A file of the monitoring bundle, by its path under `monitoring/`.
pub(crate) fn read(rel: &str) -> String {
    let path = monitoring().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub(crate) fn yaml(rel: &str) -> Yaml {
    serde_norway::from_str(&read(rel)).unwrap_or_else(|e| panic!("monitoring/{rel}: {e}"))
}

// ------------------------------------------------------------------ tools

/// The path of a Prometheus tool, or a panic that names the Debian package
/// to install: a missing tool must fail the test, never skip it.
pub(crate) fn tool(name: &str, package: &str) -> PathBuf {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain([PathBuf::from("/usr/bin")])
        .map(|dir| dir.join(name))
        .find(|p| p.is_file());
    found.unwrap_or_else(|| {
        panic!(
            "`{name}` not found: install the Debian package `{package}` \
             (apt-get install {package}, or run scripts/setup)"
        )
    })
}

pub(crate) fn promtool() -> Command {
    Command::new(tool("promtool", "prometheus"))
}

pub(crate) fn amtool() -> Command {
    Command::new(tool("amtool", "prometheus-alertmanager"))
}

/// Runs `cmd` and returns its output, panicking with both streams on failure.
pub(crate) fn run_ok(mut cmd: Command) -> Output {
    let shown = format!("{cmd:?}");
    let out = cmd.output().unwrap_or_else(|e| panic!("{shown}: {e}"));
    assert!(
        out.status.success(),
        "{shown} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub(crate) fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

// ---------------------------------------------------------- metric names

/// The daemon's series (the fixed interface of docs/design.md §0.3 and issue 8).
const DAEMON_METRICS: &[&str] = &[
    "vms_camera_status",
    "vms_recording_active",
    "vms_recovery_failures_total",
    "vms_disk_usage_percent",
    "vms_disk_usage_bytes",
    "vms_active_alerts",
    "vms_recording_last_data_age_seconds",
    "vms_recoveries_total",
    "vms_camera_state",
    "vms_mediamtx_up",
    "vms_mediamtx_restarts_total",
    "vms_alert_outbox_depth",
    "vms_alert_outbox_oldest_seconds",
    "vms_alert_deliveries_total",
    "vms_alert_store_durable",
    "vms_build_info",
];

/// Series the daemon also exports that the box dashboard does not have to
/// show (storage detail, the backup queue, push channels): known to the
/// rule and dashboard checks, not required in a panel.
const DAEMON_EXTRA_METRICS: &[&str] = &[
    "vms_alert_channel_up",
    "vms_backup_config_error",
    "vms_backup_failures_total",
    "vms_backup_lag_seconds",
    "vms_backup_queue_bytes",
    "vms_backup_queue_segments",
    "vms_backup_uploaded_bytes_total",
    "vms_backup_uploaded_segments_total",
    "vms_live_views",
    "vms_storage_bytes",
    "vms_storage_capacity_days",
    "vms_storage_catalog_bytes",
    "vms_storage_days_until_full",
    "vms_storage_disk_full",
    "vms_storage_evicted_bytes_total",
    "vms_storage_evicted_hours_total",
    "vms_storage_evictions_total",
    "vms_storage_footage_days",
    "vms_storage_free_floor_bytes",
    "vms_storage_retention_compliant",
    "vms_storage_retention_deleted_total",
    "vms_storage_retention_required_days",
    "vms_storage_segments",
    "vms_storage_write_bytes_per_second",
    // With [api] tls_cert only.
    "vms_tls_certificate_expiry_timestamp_seconds",
];

/// The daemon's histograms: only their `_bucket`, `_sum` and `_count`
/// series exist in Prometheus; the bare name matches nothing.
const DAEMON_HISTOGRAMS: &[&str] = &[
    "vms_stream_latency_seconds",
    "vms_recovery_duration_seconds",
];

/// MediaMTX v1.20.1's series (docs/mediamtx.md §c, `internal/metrics/metrics.go`):
/// no prefix, no `_total`. The deprecated duplicates are in
/// [`MEDIAMTX_DEPRECATED`].
fn mediamtx_metrics() -> BTreeSet<String> {
    let mut names: BTreeSet<String> = [
        "paths",
        "paths_readers",
        "paths_inbound_bytes",
        "paths_outbound_bytes",
        "paths_inbound_frames_in_error",
        "forward_dests",
        "forward_dests_outbound_bytes",
        "hls_sessions",
        "hls_sessions_outbound_bytes",
        "hls_muxers",
        "hls_muxers_outbound_bytes",
        "hls_muxers_outbound_frames_discarded",
        "webrtc_sessions",
        "moq_sessions",
        "moq_sessions_inbound_bytes",
        "moq_sessions_outbound_bytes",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for proto in ["rtsp", "rtsps"] {
        for conn in ["", "_inbound_bytes", "_outbound_bytes"] {
            names.insert(format!("{proto}_conns{conn}"));
        }
        names.insert(format!("{proto}_sessions"));
        for s in [
            "inbound_bytes",
            "inbound_rtp_packets",
            "inbound_rtp_packets_lost",
            "inbound_rtp_packets_in_error",
            "inbound_rtp_packets_jitter",
            "inbound_rtcp_packets",
            "inbound_rtcp_packets_in_error",
            "outbound_bytes",
            "outbound_rtp_packets",
            "outbound_rtp_packets_reported_lost",
            "outbound_rtp_packets_discarded",
            "outbound_rtcp_packets",
        ] {
            names.insert(format!("{proto}_sessions_{s}"));
        }
    }
    for proto in ["rtmp", "rtmps"] {
        for s in [
            "",
            "_inbound_bytes",
            "_outbound_bytes",
            "_outbound_frames_discarded",
        ] {
            names.insert(format!("{proto}_conns{s}"));
        }
    }
    for s in [
        "inbound_bytes",
        "inbound_rtp_packets",
        "inbound_rtp_packets_lost",
        "inbound_rtp_packets_jitter",
        "inbound_rtcp_packets",
        "outbound_bytes",
        "outbound_rtp_packets",
        "outbound_rtcp_packets",
        "outbound_frames_discarded",
    ] {
        names.insert(format!("webrtc_sessions_{s}"));
    }
    names
}

/// MediaMTX's deprecated series and their replacements: they still exist in
/// v1.20.1 but new queries must not use them.
const MEDIAMTX_DEPRECATED: &[(&str, &str)] = &[
    ("paths_bytes_received", "paths_inbound_bytes"),
    ("paths_bytes_sent", "paths_outbound_bytes"),
    ("hls_muxers_bytes_sent", "hls_muxers_outbound_bytes"),
    (
        "rtsp_sessions_bytes_received",
        "rtsp_sessions_inbound_bytes",
    ),
    ("rtsp_sessions_bytes_sent", "rtsp_sessions_outbound_bytes"),
    (
        "webrtc_sessions_bytes_received",
        "webrtc_sessions_inbound_bytes",
    ),
    (
        "webrtc_sessions_bytes_sent",
        "webrtc_sessions_outbound_bytes",
    ),
];

/// Why `name` is not a series our Prometheus can have, or `None` if it is:
/// one of the daemon's names, MediaMTX's, the node exporter's (`node_*`) or
/// Prometheus's own `up`.
pub(crate) fn unknown_metric(name: &str) -> Option<String> {
    if DAEMON_METRICS.contains(&name)
        || DAEMON_EXTRA_METRICS.contains(&name)
        || name == "up"
        || name.starts_with("node_")
    {
        return None;
    }
    for h in DAEMON_HISTOGRAMS {
        if name == *h {
            return Some(format!(
                "{name} is a histogram: use {name}_bucket, {name}_sum or {name}_count"
            ));
        }
        if ["_bucket", "_sum", "_count"]
            .iter()
            .any(|s| name.strip_suffix(s) == Some(h))
        {
            return None;
        }
    }
    if let Some((_, new)) = MEDIAMTX_DEPRECATED.iter().find(|(old, _)| *old == name) {
        return Some(format!("{name} is deprecated in MediaMTX: use {new}"));
    }
    if mediamtx_metrics().contains(name) {
        return None;
    }
    if let Some(real) = name.strip_prefix("mediamtx_") {
        return Some(format!(
            "{name}: MediaMTX's metrics have no `mediamtx_` prefix (docs/mediamtx.md §c), try {real}"
        ));
    }
    Some(format!(
        "{name} is neither a vms-supervisor, MediaMTX, node exporter metric nor `up`"
    ))
}

/// PromQL words that are not metric names (aggregations, operators,
/// modifiers, literals). Functions are recognised by the `(` that follows.
const PROMQL_WORDS: &[&str] = &[
    "sum",
    "avg",
    "min",
    "max",
    "count",
    "group",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "count_values",
    "and",
    "or",
    "unless",
    "atan2",
    "bool",
    "offset",
    "inf",
    "nan",
];

/// Words followed by a parenthesised list of label names.
const LABEL_LIST_WORDS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// The metric names an expression selects. A small PromQL lexer: it skips
/// strings, label matchers (`{...}`), ranges (`[...]`), numbers, durations,
/// Grafana variables (`$box`) and label lists (`by (...)`), and takes every
/// other identifier that is not followed by `(` as a metric name.
pub(crate) fn metric_names(expr: &str) -> BTreeSet<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    let skip_string = |mut i: usize, quote: char| -> usize {
        i += 1;
        while i < chars.len() && chars[i] != quote {
            if chars[i] == '\\' {
                i += 1;
            }
            i += 1;
        }
        i + 1
    };
    let skip_until = |mut i: usize, close: char| -> usize {
        while i < chars.len() && chars[i] != close {
            if matches!(chars[i], '"' | '\'' | '`') {
                i = skip_string(i, chars[i]);
            } else {
                i += 1;
            }
        }
        i + 1
    };
    let next_non_space = |mut i: usize| -> Option<(usize, char)> {
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        chars.get(i).map(|c| (i, *c))
    };
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    while i < chars.len() {
        let c = chars[i];
        if matches!(c, '"' | '\'' | '`') {
            i = skip_string(i, c);
        } else if c == '{' {
            i = skip_until(i, '}');
        } else if c == '[' {
            i = skip_until(i, ']');
        } else if c == '#' {
            i = skip_until(i, '\n');
        } else if c.is_ascii_digit() || c == '.' || c == '$' {
            // Numbers (1e6, 0.95), durations (5m) and Grafana variables.
            i += 1;
            while i < chars.len() && (is_ident(chars[i]) || chars[i] == '.') {
                i += 1;
            }
        } else if is_ident(c) {
            let start = i;
            while i < chars.len() && is_ident(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let next = next_non_space(i);
            if LABEL_LIST_WORDS.contains(&word.as_str()) {
                if let Some((j, '(')) = next {
                    i = skip_until(j, ')');
                }
            } else if PROMQL_WORDS.contains(&word.to_lowercase().as_str())
                || matches!(next, Some((_, '(')))
            {
                // An aggregation, an operator or a function call.
            } else {
                names.insert(word);
            }
        } else {
            i += 1;
        }
    }
    names
}

#[test]
fn metric_name_lexer_finds_only_metric_names() {
    let found = metric_names(
        r#"sum by (name, state) (rate(paths_outbound_bytes{state="ready",name=~"cam_.*"}[$__rate_interval]))
           / on(name) group_left(camera_name) topk without(camera_name) (1, vms_camera_status offset 5m)
           or vector(0) * 1e6 + histogram_quantile(0.95, vms_stream_latency_seconds_bucket{box=~"$box"})
           and up{job="a{b}"} unless sum(node_load1) by (instance)"#,
    );
    let expected: BTreeSet<String> = [
        "paths_outbound_bytes",
        "vms_camera_status",
        "vms_stream_latency_seconds_bucket",
        "up",
        "node_load1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(found, expected);
    // And the classifier rejects the original design's names (docs/design.md §7.2) and bare histograms.
    assert!(unknown_metric("mediamtx_hls_sessions")
        .unwrap()
        .contains("no `mediamtx_` prefix"));
    assert!(unknown_metric("paths_bytes_sent")
        .unwrap()
        .contains("use paths_outbound_bytes"));
    assert!(unknown_metric("vms_stream_latency_seconds")
        .unwrap()
        .contains("histogram"));
    assert!(unknown_metric("vms_made_up").is_some());
    assert_eq!(unknown_metric("vms_recovery_duration_seconds_count"), None);
    assert_eq!(
        unknown_metric("webrtc_sessions_outbound_frames_discarded"),
        None
    );
}

// ------------------------------------------------------------- prometheus

#[test]
fn prometheus_config_is_valid_and_loads_every_alert_rule() {
    let mut cmd = promtool();
    cmd.args(["check", "config"])
        .arg(monitoring().join("prometheus.yml"));
    let out = text(&run_ok(cmd));
    // rule_files is resolved next to prometheus.yml, so the real file is
    // checked as shipped, without a temporary copy.
    assert!(out.contains("SUCCESS: 1 rule files found"), "{out}");
    let n = alert_rules().len();
    assert!(out.contains(&format!("SUCCESS: {n} rules found")), "{out}");

    let cfg = yaml("prometheus.yml");
    assert_eq!(cfg["global"]["scrape_interval"], "15s");
    let jobs: BTreeMap<String, (String, String)> = cfg["scrape_configs"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|job| {
            let targets = job["static_configs"][0]["targets"].as_sequence().unwrap();
            assert_eq!(targets.len(), 1, "{job:?}");
            (
                job["job_name"].as_str().unwrap().to_string(),
                (
                    targets[0].as_str().unwrap().to_string(),
                    job["metrics_path"]
                        .as_str()
                        .unwrap_or("/metrics")
                        .to_string(),
                ),
            )
        })
        .collect();
    let expected: BTreeMap<String, (String, String)> = [
        ("vms-supervisor", "127.0.0.1:8000"),
        ("mediamtx", "127.0.0.1:9998"),
        ("node", "127.0.0.1:9100"),
    ]
    .iter()
    .map(|(j, t)| (j.to_string(), (t.to_string(), "/metrics".to_string())))
    .collect();
    assert_eq!(
        jobs, expected,
        "the jobs of docs/design.md §7.3, without Django and Celery"
    );
    assert_eq!(cfg["rule_files"][0], "alerts.yml");
}

/// `(name, rule)` of every alerting rule in alerts.yml.
fn alert_rules() -> Vec<(String, Yaml)> {
    let rules = yaml("alerts.yml");
    let mut out = Vec::new();
    for group in rules["groups"].as_sequence().unwrap() {
        for rule in group["rules"].as_sequence().unwrap() {
            if let Some(name) = rule["alert"].as_str() {
                out.push((name.to_string(), rule.clone()));
            }
        }
    }
    out
}

#[test]
fn alert_rules_are_valid() {
    let mut cmd = promtool();
    cmd.args(["check", "rules"])
        .arg(monitoring().join("alerts.yml"));
    let out = text(&run_ok(cmd));
    assert!(out.contains("SUCCESS"), "{out}");
}

#[test]
fn alert_rules_pass_their_unit_tests() {
    let mut cmd = promtool();
    cmd.args(["test", "rules"])
        .arg(monitoring().join("tests/alerts_test.yml"));
    let out = text(&run_ok(cmd));
    assert!(out.contains("SUCCESS"), "{out}");
    assert!(!out.contains("FAILED"), "{out}");
}

#[test]
fn every_alert_rule_has_a_firing_and_a_quiet_unit_test() {
    let tests = yaml("tests/alerts_test.yml");
    let mut fires = BTreeSet::new();
    let mut quiet = BTreeSet::new();
    for case in tests["tests"].as_sequence().unwrap() {
        for t in case["alert_rule_test"].as_sequence().unwrap() {
            let name = t["alertname"].as_str().unwrap().to_string();
            match t["exp_alerts"].as_sequence() {
                Some(alerts) if !alerts.is_empty() => {
                    // A firing case pins the labels and the pt-BR texts.
                    for a in alerts {
                        assert!(
                            a["exp_labels"]["severity"].is_string()
                                && a["exp_annotations"]["summary"].is_string()
                                && a["exp_annotations"]["description"].is_string(),
                            "{name}: a firing case must check severity, summary and description"
                        );
                    }
                    fires.insert(name);
                }
                _ => {
                    quiet.insert(name);
                }
            }
        }
    }
    let names: BTreeSet<String> = alert_rules().into_iter().map(|(n, _)| n).collect();
    let untested_fire: Vec<_> = names.difference(&fires).collect();
    let untested_quiet: Vec<_> = names.difference(&quiet).collect();
    assert!(
        untested_fire.is_empty() && untested_quiet.is_empty(),
        "monitoring/tests/alerts_test.yml lacks a case where these rules fire: {untested_fire:?}, \
         and where these stay quiet: {untested_quiet:?}"
    );
    let stray: Vec<_> = fires
        .union(&quiet)
        .filter(|n| !names.contains(*n))
        .collect();
    assert!(
        stray.is_empty(),
        "tests for rules that do not exist: {stray:?}"
    );
}

#[test]
fn alert_rules_cover_issue_8_and_follow_the_conventions() {
    let rules = alert_rules();
    let names: BTreeSet<&str> = rules.iter().map(|(n, _)| n.as_str()).collect();
    for required in [
        "CameraOffline",
        "RecordingStopped",
        "DiskAlmostFull",
        "DiskCritical",
        "HighRecoveryFailureRate",
        "RecordingDataStale",
        "MediaMTXDown",
        "MediaMTXRestarting",
        "AlertDeliveryBacklog",
        "SupervisorDown",
        "NoActiveSessions",
    ] {
        assert!(names.contains(required), "alerts.yml has no {required}");
    }
    assert_eq!(names.len(), rules.len(), "duplicate alert names");
    for (name, rule) in &rules {
        let severity = rule["labels"]["severity"].as_str().unwrap_or("");
        assert!(
            ["critical", "warning", "info"].contains(&severity),
            "{name}: severity {severity:?}"
        );
        for key in ["summary", "description"] {
            assert!(
                !rule["annotations"][key].as_str().unwrap_or("").is_empty(),
                "{name}: no {key} annotation"
            );
        }
        let expr = rule["expr"].as_str().unwrap();
        for metric in metric_names(expr) {
            if let Some(why) = unknown_metric(&metric) {
                panic!("{name}: {why}");
            }
        }
    }
    // The values of docs/design.md §7.4, kept.
    let rule = |n: &str| &rules.iter().find(|(name, _)| name == n).unwrap().1;
    assert_eq!(rule("CameraOffline")["for"], "1m");
    assert_eq!(rule("RecordingStopped")["for"], "2m");
    assert_eq!(rule("DiskAlmostFull")["labels"]["severity"], "warning");
    assert_eq!(rule("DiskCritical")["labels"]["severity"], "critical");
    // No viewers is normal at night: never a page.
    assert_eq!(rule("NoActiveSessions")["labels"]["severity"], "info");
}

// ----------------------------------------------------------- alertmanager

#[test]
fn alertmanager_config_is_valid_and_routes_to_the_daemon_webhook() {
    // amtool does not open credentials_file, so the shipped file is checked
    // as is, even on a machine without /etc/vms/api-token.
    let mut cmd = amtool();
    cmd.arg("check-config")
        .arg(monitoring().join("alertmanager.yml"));
    let out = text(&run_ok(cmd));
    assert!(out.contains("SUCCESS"), "{out}");
    assert!(out.contains("3 inhibit rules"), "{out}");

    for alert in ["CameraOffline", "NoActiveSessions", "SupervisorDown"] {
        let mut cmd = amtool();
        cmd.args(["config", "routes", "test", "--config.file"])
            .arg(monitoring().join("alertmanager.yml"))
            .arg(format!("alertname={alert}"))
            .arg("camera_id=1");
        let out = run_ok(cmd);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "vms-supervisor",
            "{alert}"
        );
    }

    let cfg = yaml("alertmanager.yml");
    let route = &cfg["route"];
    assert_eq!(
        route["group_by"],
        serde_norway::from_str::<Yaml>("[alertname, camera_id]").unwrap()
    );
    assert_eq!(route["group_wait"], "10s");
    assert_eq!(route["group_interval"], "10s");
    assert_eq!(route["repeat_interval"], "12h");
    let hook = &cfg["receivers"][0]["webhook_configs"][0];
    assert_eq!(hook["url"], "http://127.0.0.1:8000/api/alerts/webhook");
    assert_eq!(hook["send_resolved"], true);
    let auth = &hook["http_config"]["authorization"];
    assert_eq!(auth["type"], "Bearer");
    assert_eq!(auth["credentials_file"], "/etc/vms/api-token");
}

// ---------------------------------------------------------------- grafana

const DASHBOARDS: &[&str] = &["overview.json", "streaming.json", "recordings.json"];

/// Every PromQL query of a dashboard of `grafana/dashboards/`.
fn dashboard_queries(file: &str) -> Vec<(String, String)> {
    queries_in_dashboard(&dashboard(file), file)
}

/// Every PromQL query of the dashboard `dash` (named `file` in the
/// answer), with where it comes from: panel targets (also inside rows) and
/// query variables (`label_values(...)`).
pub(crate) fn queries_in_dashboard(dash: &Json, file: &str) -> Vec<(String, String)> {
    fn walk(v: &Json, at: &str, out: &mut Vec<(String, String)>) {
        match v {
            Json::Object(map) => {
                let here = match (map.get("title"), map.get("refId")) {
                    (_, Some(Json::String(r))) => format!("{at} {r}"),
                    (Some(Json::String(t)), _) => format!("{at} / {t}"),
                    _ => at.to_string(),
                };
                if let Some(Json::String(expr)) = map.get("expr") {
                    out.push((here.clone(), expr.clone()));
                }
                for (k, child) in map {
                    if k != "expr" {
                        walk(child, &here, out);
                    }
                }
            }
            Json::Array(items) => items.iter().for_each(|c| walk(c, at, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(&dash["panels"], file, &mut out);
    for var in dash["templating"]["list"].as_array().unwrap() {
        if var["type"] == "query" {
            let q = var["definition"].as_str().unwrap();
            let inner = q
                .strip_prefix("label_values(")
                .and_then(|r| r.rsplit_once(','))
                .map(|(sel, _)| sel.to_string())
                .unwrap_or_else(|| panic!("{file}: variable query {q:?} is not label_values(...)"));
            out.push((format!("{file} variable {}", var["name"]), inner));
        }
    }
    out
}

fn dashboard(file: &str) -> Json {
    serde_json::from_str(&read(&format!("grafana/dashboards/{file}")))
        .unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// Grafana's variables replaced by values Prometheus accepts.
pub(crate) fn expand_grafana_variables(expr: &str) -> String {
    let out = expr
        .replace("$__rate_interval", "1m")
        .replace("$__interval", "15s")
        .replace("$__range", "1h")
        .replace("$box", ".*")
        .replace("$site", ".*");
    assert!(!out.contains('$'), "unknown Grafana variable in {expr:?}");
    out
}

/// Parses `queries` with `promtool check rules` (each one becomes a
/// recording rule), returning promtool's complaint if one does not parse.
pub(crate) fn promql_parse_errors(queries: &[(String, String)]) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let rules: Vec<Json> = queries
        .iter()
        .enumerate()
        .map(|(i, (_, expr))| {
            serde_json::json!({ "record": format!("dashboard:query_{i}"), "expr": expand_grafana_variables(expr) })
        })
        .collect();
    let file = dir.path().join("queries.yml");
    let doc = serde_json::json!({ "groups": [{ "name": "dashboards", "rules": rules }] });
    std::fs::write(&file, serde_norway::to_string(&doc).unwrap()).unwrap();
    let out = promtool()
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .expect("running promtool");
    if out.status.success() {
        Ok(())
    } else {
        // promtool names the failing rule by its index ("rule 3").
        Err(format!(
            "{}\nqueries:\n{}",
            text(&out),
            queries
                .iter()
                .enumerate()
                .map(|(i, (at, e))| format!("  {i}: {at}: {e}"))
                .collect::<Vec<_>>()
                .join("\n")
        ))
    }
}

#[test]
fn promql_parse_check_rejects_a_bad_query() {
    // The check below is only worth something if it can fail.
    let bad = vec![("bad".to_string(), "rate(vms_disk_usage_bytes)".to_string())];
    let err = promql_parse_errors(&bad).unwrap_err();
    assert!(err.contains("range vector"), "{err}");
}

#[test]
fn every_dashboard_query_parses() {
    let mut all = Vec::new();
    for file in DASHBOARDS {
        let queries = dashboard_queries(file);
        assert!(
            queries.len() >= 10,
            "{file}: only {} queries",
            queries.len()
        );
        all.extend(queries);
    }
    if let Err(e) = promql_parse_errors(&all) {
        panic!("a dashboard query does not parse:\n{e}");
    }
}

#[test]
fn every_dashboard_query_uses_only_existing_metrics() {
    let mut problems = Vec::new();
    let mut used = BTreeSet::new();
    for file in DASHBOARDS {
        for (at, expr) in dashboard_queries(file) {
            let names = metric_names(&expr);
            if names.is_empty() {
                problems.push(format!("{at}: selects no metric: {expr}"));
            }
            for name in names {
                if let Some(why) = unknown_metric(&name) {
                    problems.push(format!("{at}: {why}"));
                }
                used.insert(name);
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // The dashboards show every series the daemon exports.
    let histograms = DAEMON_HISTOGRAMS.iter().map(|h| format!("{h}_count"));
    for name in DAEMON_METRICS
        .iter()
        .map(|s| s.to_string())
        .chain(histograms)
    {
        assert!(used.contains(&name), "no dashboard panel shows {name}");
    }
}

#[test]
fn dashboards_are_well_formed() {
    let mut uids = BTreeSet::new();
    for file in DASHBOARDS {
        let dash = dashboard(file);
        let uid = dash["uid"].as_str().unwrap();
        assert!(uids.insert(uid.to_string()), "{file}: duplicate uid {uid}");
        assert!(dash["title"].as_str().unwrap().starts_with("VMS"));
        let vars: Vec<&str> = dash["templating"]["list"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["name"].as_str().unwrap())
            .collect();
        assert_eq!(vars, ["datasource", "box"], "{file}");
        let mut ids = BTreeSet::new();
        for panel in dash["panels"].as_array().unwrap() {
            let title = panel["title"].as_str().unwrap();
            assert!(
                ids.insert(panel["id"].as_u64().unwrap()),
                "{file}: duplicate id"
            );
            let pos = &panel["gridPos"];
            assert!(
                pos["x"].as_u64().unwrap() + pos["w"].as_u64().unwrap() <= 24,
                "{file}: {title} is wider than the grid"
            );
            if panel["type"] == "row" {
                continue;
            }
            // Panels follow the dashboard's datasource variable, so the
            // dashboards also work when imported into an existing Grafana.
            assert_eq!(
                panel["datasource"]["uid"], "${datasource}",
                "{file}: {title}"
            );
            let targets = panel["targets"].as_array().unwrap();
            assert!(!targets.is_empty(), "{file}: {title} has no query");
            for t in targets {
                assert_eq!(t["datasource"]["uid"], "${datasource}", "{file}: {title}");
                assert!(
                    t["expr"].as_str().unwrap().contains(r#"box=~"$box""#),
                    "{file}: {title}: query ignores the box variable: {}",
                    t["expr"]
                );
            }
        }
    }
}

// ---------------------------------------------------------------- compose

/// `source -> target` of a service's bind mounts and volumes.
fn mounts(service: &Yaml) -> Vec<(String, String)> {
    service["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| {
            let mut parts = v.as_str().unwrap().split(':');
            let src = parts.next().unwrap().to_string();
            let dst = parts.next().unwrap_or_else(|| panic!("{v:?}")).to_string();
            (src, dst)
        })
        .collect()
}

/// The value of `--flag=value` in a service's command.
fn flag(service: &Yaml, name: &str) -> String {
    let prefix = format!("--{name}=");
    service["command"]
        .as_sequence()
        .unwrap()
        .iter()
        .find_map(|a| a.as_str().unwrap().strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no --{name} in {service:?}"))
        .to_string()
}

fn mount_target(service: &Yaml, source: &str) -> String {
    mounts(service)
        .into_iter()
        .find(|(s, _)| s == source)
        .unwrap_or_else(|| panic!("{source} is not mounted in {service:?}"))
        .1
}

#[test]
fn compose_file_mounts_existing_files_where_the_services_read_them() {
    let compose = yaml("docker-compose.monitoring.yml");
    let services = &compose["services"];
    let names: BTreeSet<&str> = services
        .as_mapping()
        .unwrap()
        .keys()
        .map(|k| k.as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        BTreeSet::from(["prometheus", "grafana", "node-exporter", "alertmanager"])
    );
    let declared: BTreeSet<&str> = compose["volumes"]
        .as_mapping()
        .unwrap()
        .keys()
        .map(|k| k.as_str().unwrap())
        .collect();
    for (name, service) in services.as_mapping().unwrap() {
        let name = name.as_str().unwrap();
        // The targets are 127.0.0.1 (the daemon and MediaMTX's metrics only
        // listen on loopback): that works only on the host's network.
        assert_eq!(service["network_mode"], "host", "{name}");
        assert!(service["image"]
            .as_str()
            .unwrap()
            .contains(name.split('-').next().unwrap()));
        for (src, dst) in mounts(service) {
            assert!(dst.starts_with('/'), "{name}: {dst}");
            if let Some(rel) = src.strip_prefix("./") {
                assert!(
                    monitoring().join(rel).exists(),
                    "{name} mounts {src}, which is not in monitoring/"
                );
            } else if !src.starts_with('/') {
                assert!(
                    declared.contains(src.as_str()),
                    "{name}: volume {src} is not declared"
                );
            }
        }
    }

    // Prometheus reads prometheus.yml where --config.file says, and finds
    // alerts.yml beside it (rule_files is relative).
    let prom = &services["prometheus"];
    let config = flag(prom, "config.file");
    assert_eq!(mount_target(prom, "./prometheus.yml"), config);
    let rules = yaml("prometheus.yml")["rule_files"][0]
        .as_str()
        .unwrap()
        .to_string();
    let config_dir = Path::new(&config).parent().unwrap();
    assert_eq!(
        Path::new(&mount_target(prom, "./alerts.yml")),
        config_dir.join(rules)
    );
    let prom_listen = flag(prom, "web.listen-address");

    // Alertmanager: its config, the token file it names, and the address
    // prometheus.yml sends alerts to.
    let am = &services["alertmanager"];
    assert_eq!(
        mount_target(am, "./alertmanager.yml"),
        flag(am, "config.file")
    );
    let token = yaml("alertmanager.yml")["receivers"][0]["webhook_configs"][0]["http_config"]
        ["authorization"]["credentials_file"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(mount_target(am, &token), token);
    assert_eq!(
        yaml("prometheus.yml")["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"][0],
        flag(am, "web.listen-address").as_str()
    );

    // The node exporter listens where prometheus.yml scrapes it.
    let node_target = yaml("prometheus.yml")["scrape_configs"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|j| j["job_name"] == "node")
        .unwrap()["static_configs"][0]["targets"][0]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        flag(&services["node-exporter"], "web.listen-address"),
        node_target
    );

    // Grafana: provisioning files in the directories Grafana scans, the
    // dashboards where the provider looks, the datasource at Prometheus.
    let grafana = &services["grafana"];
    let ds_target = mount_target(grafana, "./grafana/datasources.yml");
    assert!(
        ds_target.starts_with("/etc/grafana/provisioning/datasources/")
            && ds_target.ends_with(".yml")
    );
    let prov_target = mount_target(grafana, "./grafana/dashboards.yml");
    assert!(
        prov_target.starts_with("/etc/grafana/provisioning/dashboards/")
            && prov_target.ends_with(".yml")
    );
    let provider = &yaml("grafana/dashboards.yml")["providers"][0];
    assert_eq!(provider["type"], "file");
    let dash_dir = mount_target(grafana, "./grafana/dashboards");
    assert_eq!(provider["options"]["path"], dash_dir.as_str());
    let home = grafana["environment"]
        .as_sequence()
        .unwrap()
        .iter()
        .find_map(|e| {
            e.as_str()
                .unwrap()
                .strip_prefix("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH=")
        })
        .unwrap()
        .to_string();
    let home_file = Path::new(&home).strip_prefix(&dash_dir).unwrap();
    assert!(
        monitoring()
            .join("grafana/dashboards")
            .join(home_file)
            .is_file(),
        "{home}"
    );
    let ds = &yaml("grafana/datasources.yml")["datasources"][0];
    assert_eq!(ds["type"], "prometheus");
    assert_eq!(ds["url"], format!("http://{prom_listen}").as_str());
    // No default admin password.
    assert!(grafana["environment"]
        .as_sequence()
        .unwrap()
        .iter()
        .all(|e| e.as_str().unwrap() != "GF_SECURITY_ADMIN_PASSWORD=admin"));
    // Every JSON dashboard is in the mounted directory.
    for file in DASHBOARDS {
        assert!(monitoring().join("grafana/dashboards").join(file).is_file());
    }
}

// ------------------------------------------------------ a real Prometheus

/// A real Prometheus server (Debian's `/usr/bin/prometheus`) on a free
/// loopback port, with its config and storage in a temporary directory.
/// Killed when dropped.
pub struct TestPrometheus {
    child: Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl TestPrometheus {
    /// Starts Prometheus with `config` (a complete prometheus.yml) and waits
    /// until `/-/ready` answers 200. `{{PROMETHEUS}}` in the config is
    /// replaced by this server's own `127.0.0.1:PORT`. Panics (naming the
    /// Debian package if the binary is missing, or with Prometheus's log)
    /// when it cannot start.
    pub fn start(config: &str) -> TestPrometheus {
        Self::start_with_files(config, &[])
    }

    /// Like [`TestPrometheus::start`], with extra files (e.g. rule files,
    /// referenced by relative paths from the config) written beside the
    /// config first.
    pub fn start_with_files(config: &str, files: &[(&str, &str)]) -> TestPrometheus {
        let binary = tool("prometheus", "prometheus");
        let mut dir = tempfile::tempdir().unwrap();
        for (name, contents) in files {
            std::fs::write(dir.path().join(name), contents).unwrap();
        }
        // The port is free when chosen but could be taken before Prometheus
        // binds it: retry a few times on "address already in use".
        for _attempt in 0..5 {
            let addr = free_port();
            let config_file = dir.path().join("prometheus.yml");
            std::fs::write(
                &config_file,
                config.replace("{{PROMETHEUS}}", &addr.to_string()),
            )
            .unwrap();
            let log_file = dir.path().join("prometheus.log");
            let log = std::fs::File::create(&log_file).unwrap();
            let child = Command::new(&binary)
                .arg(format!("--config.file={}", config_file.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.path().join("data").display()
                ))
                .arg(format!("--web.listen-address={addr}"))
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
            let mut prom = TestPrometheus { child, addr, dir };
            match prom.wait_ready(Duration::from_secs(60)) {
                Ok(()) => return prom,
                Err(log) if log.contains("address already in use") => {
                    dir = prom.into_dir();
                    continue;
                }
                Err(log) => panic!("prometheus did not become ready:\n{log}"),
            }
        }
        panic!("prometheus: no free port after 5 attempts");
    }

    /// `127.0.0.1:PORT` of the web API.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The temporary directory holding `prometheus.yml`, the extra files,
    /// `prometheus.log` and the TSDB (`data/`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Prometheus's output so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// Runs an instant PromQL query through `/api/v1/query` and returns
    /// `data.result` (for a vector: objects with `metric` and `value`), or
    /// the API's error (e.g. a parse error).
    pub fn try_query(&self, promql: &str) -> Result<Vec<Json>, String> {
        query_api(self.addr, promql)
    }

    /// [`TestPrometheus::try_query`] that panics on an error.
    pub fn query(&self, promql: &str) -> Vec<Json> {
        self.try_query(promql)
            .unwrap_or_else(|e| panic!("query {promql:?}: {e}"))
    }

    /// Polls `promql` until it returns a non-empty result (e.g. after the
    /// first scrapes) and returns it; panics after `timeout` with the last
    /// answer, the scrape targets' state and Prometheus's log.
    pub fn wait_for(&self, promql: &str, timeout: Duration) -> Vec<Json> {
        let deadline = Instant::now() + timeout;
        loop {
            let last = self.try_query(promql);
            if let Ok(result) = &last {
                if !result.is_empty() {
                    return result.clone();
                }
            }
            if Instant::now() >= deadline {
                let targets = http::get(self.addr, "/api/v1/targets").map(|(_, b)| b);
                panic!(
                    "{promql:?} still empty after {timeout:?}: {last:?}\ntargets: {targets:?}\nlog:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits for `/-/ready`, or returns the log if the process exits or the
    /// deadline passes.
    fn wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Err(format!("exited with {status}:\n{}", self.log()));
            }
            if let Ok((200, _)) = http::get(self.addr, "/-/ready") {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!("not ready after {timeout:?}:\n{}", self.log()));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the process and hands the directory back (for a retry).
    fn into_dir(mut self) -> tempfile::TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let dir = tempfile::tempdir().unwrap();
        std::mem::replace(&mut self.dir, dir)
    }
}

impl Drop for TestPrometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An instant PromQL query through the `/api/v1/query` of the Prometheus
/// at `addr`: `data.result` (for a vector: objects with `metric` and
/// `value`), or the API's error (e.g. a parse error).
pub(crate) fn query_api(addr: SocketAddr, promql: &str) -> Result<Vec<Json>, String> {
    let (status, body) = http::get(addr, &format!("/api/v1/query?query={}", url_encode(promql)))?;
    let doc: Json =
        serde_json::from_str(&body).map_err(|e| format!("HTTP {status}: {e}: {body}"))?;
    if doc["status"] != "success" {
        return Err(format!(
            "HTTP {status}: {} {}",
            doc["errorType"], doc["error"]
        ));
    }
    match &doc["data"]["result"] {
        Json::Array(items) => Ok(items.clone()),
        // Scalars and strings: [time, "value"].
        other => Ok(vec![other.clone()]),
    }
}

fn free_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], crate::harness::free_port()))
}

pub(crate) fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn test_prometheus_scrapes_itself_and_answers_promql() {
    let prom = TestPrometheus::start(
        r#"
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ['{{PROMETHEUS}}']
"#,
    );
    let up = prom.wait_for(r#"up{job="prometheus"} == 1"#, Duration::from_secs(30));
    assert_eq!(up.len(), 1, "{up:?}");
    assert_eq!(
        up[0]["metric"]["instance"],
        prom.addr().to_string().as_str()
    );
    assert_eq!(up[0]["value"][1], "1");
    // A real series from the scrape, through an aggregation.
    let heads = prom.wait_for(
        r#"count by (job) (prometheus_build_info{job="prometheus"})"#,
        Duration::from_secs(30),
    );
    assert_eq!(heads[0]["metric"]["job"], "prometheus");
    assert_eq!(heads[0]["value"][1], "1");
    // Nothing for a job that is not configured, and PromQL errors come back.
    assert!(prom.query(r#"up{job="vms-supervisor"}"#).is_empty());
    let err = prom.try_query("sum(").unwrap_err();
    assert!(err.contains("bad_data"), "{err}");
    // Its files are where the helper says.
    assert!(prom.dir().join("data").is_dir());
    assert!(prom
        .log()
        .contains("Server is ready to receive web requests"));
}

// ------------------------------------- the bundle on real Prometheus data

/// A loopback HTTP server answering `GET path` with a fixed body (200, text)
/// and anything else with 404, for as long as the test process runs.
fn serve_static(routes: Vec<(&'static str, String)>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let Some((head, _)) = read_request(&mut conn) else {
                continue;
            };
            let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
            let reply = match routes.iter().find(|(p, _)| *p == path) {
                Some((_, body)) => format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                ),
                None => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    .to_string(),
            };
            let _ = conn.write_all(reply.as_bytes());
        }
    });
    addr
}

/// Reads one HTTP request: `(head, body)`, the body by Content-Length.
fn read_request(conn: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    conn.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = conn.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        let n = conn.read(&mut chunk).ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some((head, body))
}

/// What the daemon's /metrics looks like (the fixed names and labels, in
/// metrics-exporter-prometheus's format): camera 1 healthy, camera 2
/// offline and not recording, one MediaMTX restart, one failed delivery.
const DAEMON_EXPOSITION: &str = r#"# TYPE vms_camera_status gauge
vms_camera_status{camera_id="1",camera_name="Portão Norte"} 1
vms_camera_status{camera_id="2",camera_name="Praça"} 0
# TYPE vms_camera_state gauge
vms_camera_state{camera_id="1",state="online"} 1
vms_camera_state{camera_id="1",state="recovering"} 0
vms_camera_state{camera_id="1",state="offline"} 0
vms_camera_state{camera_id="2",state="online"} 0
vms_camera_state{camera_id="2",state="recovering"} 0
vms_camera_state{camera_id="2",state="offline"} 1
# TYPE vms_recording_active gauge
vms_recording_active{camera_id="1"} 1
vms_recording_active{camera_id="2"} 0
# TYPE vms_recording_last_data_age_seconds gauge
vms_recording_last_data_age_seconds{camera_id="1"} 0.8
vms_recording_last_data_age_seconds{camera_id="2"} 900
# TYPE vms_recovery_failures_total counter
vms_recovery_failures_total{camera_id="2",failure_type="stream"} 3
# TYPE vms_recoveries_total counter
vms_recoveries_total{camera_id="1",level="1",result="success"} 1
vms_recoveries_total{camera_id="2",level="1",result="failure"} 3
vms_recoveries_total{camera_id="2",level="2",result="failure"} 1
# TYPE vms_stream_latency_seconds histogram
vms_stream_latency_seconds_bucket{camera_id="1",protocol="webrtc",le="0.25"} 7
vms_stream_latency_seconds_bucket{camera_id="1",protocol="webrtc",le="0.5"} 9
vms_stream_latency_seconds_bucket{camera_id="1",protocol="webrtc",le="+Inf"} 10
vms_stream_latency_seconds_sum{camera_id="1",protocol="webrtc"} 2.4
vms_stream_latency_seconds_count{camera_id="1",protocol="webrtc"} 10
vms_stream_latency_seconds_bucket{camera_id="1",protocol="hls",le="0.25"} 0
vms_stream_latency_seconds_bucket{camera_id="1",protocol="hls",le="0.5"} 0
vms_stream_latency_seconds_bucket{camera_id="1",protocol="hls",le="+Inf"} 3
vms_stream_latency_seconds_sum{camera_id="1",protocol="hls"} 9.1
vms_stream_latency_seconds_count{camera_id="1",protocol="hls"} 3
# TYPE vms_recovery_duration_seconds histogram
vms_recovery_duration_seconds_bucket{le="15"} 1
vms_recovery_duration_seconds_bucket{le="60"} 4
vms_recovery_duration_seconds_bucket{le="+Inf"} 4
vms_recovery_duration_seconds_sum 95
vms_recovery_duration_seconds_count 4
# TYPE vms_disk_usage_percent gauge
vms_disk_usage_percent{mount_point="/var/lib/vms/recordings"} 42.5
# TYPE vms_disk_usage_bytes gauge
vms_disk_usage_bytes{mount_point="/var/lib/vms/recordings"} 425000000000
# TYPE vms_active_alerts gauge
vms_active_alerts{severity="critical"} 1
vms_active_alerts{severity="warning"} 0
# TYPE vms_mediamtx_up gauge
vms_mediamtx_up 1
# TYPE vms_mediamtx_restarts_total counter
vms_mediamtx_restarts_total{reason="crash"} 1
# TYPE vms_alert_outbox_depth gauge
vms_alert_outbox_depth{channel="telegram"} 1
# TYPE vms_alert_outbox_oldest_seconds gauge
vms_alert_outbox_oldest_seconds{channel="telegram"} 12
# TYPE vms_alert_deliveries_total counter
vms_alert_deliveries_total{channel="telegram",result="success"} 4
vms_alert_deliveries_total{channel="telegram",result="failure"} 1
# TYPE vms_alert_store_durable gauge
vms_alert_store_durable 1
# TYPE vms_build_info gauge
vms_build_info{commit="3c7bbce",version="0.1.0"} 1
# TYPE vms_storage_footage_days gauge
vms_storage_footage_days{camera_id="1"} 61.5
vms_storage_footage_days{camera_id="2"} 90.2
# TYPE vms_storage_retention_required_days gauge
vms_storage_retention_required_days{camera_id="1"} 90
vms_storage_retention_required_days{camera_id="2"} 90
# TYPE vms_storage_retention_compliant gauge
vms_storage_retention_compliant{camera_id="1"} 0
vms_storage_retention_compliant{camera_id="2"} 1
# TYPE vms_storage_days_until_full gauge
vms_storage_days_until_full 4.5
# TYPE vms_storage_disk_full gauge
vms_storage_disk_full 0
# TYPE vms_storage_catalog_bytes gauge
vms_storage_catalog_bytes 2097152
# TYPE vms_storage_write_bytes_per_second gauge
vms_storage_write_bytes_per_second 1048576
# TYPE vms_storage_free_floor_bytes gauge
vms_storage_free_floor_bytes 53687091200
# TYPE vms_storage_evicted_hours_total counter
vms_storage_evicted_hours_total 3
# TYPE vms_storage_evicted_bytes_total counter
vms_storage_evicted_bytes_total 11811160064
# TYPE vms_backup_lag_seconds gauge
vms_backup_lag_seconds 420
"#;

/// MediaMTX v1.20.1's /metrics for two static paths (docs/mediamtx.md §c, the
/// literal example): no HELP/TYPE lines, labels sorted, unlabelled zero
/// lines for empty lists.
const MEDIAMTX_EXPOSITION: &str = r#"# Paths
paths{name="cam_1",state="ready"} 1
paths_readers{name="cam_1",readerType="hlsSession",state="ready"} 1
paths_inbound_bytes{name="cam_1",state="ready"} 8812345
paths_outbound_bytes{name="cam_1",state="ready"} 120033
paths_inbound_frames_in_error{name="cam_1",state="ready"} 0
paths{name="cam_2",state="notReady"} 1
paths_readers{name="cam_2",readerType="",state="notReady"} 0
paths_inbound_bytes{name="cam_2",state="notReady"} 0
paths_outbound_bytes{name="cam_2",state="notReady"} 0
paths_inbound_frames_in_error{name="cam_2",state="notReady"} 0

# Paths (deprecated)
paths_bytes_received{name="cam_1",state="ready"} 8812345
paths_bytes_sent{name="cam_1",state="ready"} 120033
paths_bytes_received{name="cam_2",state="notReady"} 0
paths_bytes_sent{name="cam_2",state="notReady"} 0

# HLS sessions
hls_sessions{id="6f1c2d3e-uuid",path="cam_1",remoteAddr="127.0.0.1:51234"} 1
hls_sessions_outbound_bytes{id="6f1c2d3e-uuid",path="cam_1",remoteAddr="127.0.0.1:51234"} 120033

# HLS muxers
hls_muxers{name="cam_1"} 1
hls_muxers_outbound_bytes{name="cam_1"} 120033
hls_muxers_outbound_frames_discarded{name="cam_1"} 0

# RTSP sessions
rtsp_sessions 0
rtsp_sessions_inbound_bytes 0

# WebRTC sessions
webrtc_sessions 0
webrtc_sessions_inbound_bytes 0
webrtc_sessions_outbound_frames_discarded 0

"#;

/// Every dashboard query runs without error on a real Prometheus that
/// scrapes daemon- and MediaMTX-shaped targets, and returns data (except the
/// node exporter's, which is not running here); every alert rule evaluates
/// without error, and the camera rules attach camera_name on real data.
#[test]
fn dashboards_and_rules_work_on_a_real_prometheus() {
    let target = serve_static(vec![
        ("/metrics", DAEMON_EXPOSITION.to_string()),
        ("/mediamtx/metrics", MEDIAMTX_EXPOSITION.to_string()),
    ]);
    // The shipped rules, with the 30 s group interval shortened so the test
    // does not wait for the first evaluation.
    let rules = read("alerts.yml").replace("interval: 30s", "interval: 1s");
    assert!(!rules.contains("interval: 30s"));
    let prom = TestPrometheus::start_with_files(
        &format!(
            r#"
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [alerts.yml]
scrape_configs:
  - job_name: vms-supervisor
    static_configs: [{{targets: ['{target}']}}]
  - job_name: mediamtx
    metrics_path: /mediamtx/metrics
    static_configs: [{{targets: ['{target}']}}]
"#
        ),
        &[("alerts.yml", &rules)],
    );
    // rate() needs two scrapes of the same series.
    prom.wait_for(
        r#"count_over_time(vms_build_info[1m]) >= 3 and on() count_over_time(paths{name="cam_1"}[1m]) >= 3"#,
        Duration::from_secs(30),
    );

    let mut problems = Vec::new();
    for file in DASHBOARDS {
        for (at, expr) in dashboard_queries(file) {
            let expr = expand_grafana_variables(&expr);
            match prom.try_query(&expr) {
                Err(e) => problems.push(format!("{at}: {e}: {expr}")),
                Ok(result) if result.is_empty() && !expr.contains("node_") => {
                    problems.push(format!("{at}: no data: {expr}"))
                }
                Ok(_) => {}
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // Every rule evaluated, none in error.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, body) = http::get(prom.addr(), "/api/v1/rules").unwrap();
        let doc: Json = serde_json::from_str(&body).unwrap();
        let rules: Vec<&Json> = doc["data"]["groups"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|g| g["rules"].as_array().unwrap())
            .collect();
        assert_eq!(rules.len(), alert_rules().len(), "{body}");
        let errors: Vec<String> = rules
            .iter()
            .filter(|r| r["health"] == "err")
            .map(|r| format!("{}: {}", r["name"], r["lastError"]))
            .collect();
        assert!(errors.is_empty(), "rules in error: {errors:?}");
        if rules.iter().all(|r| r["health"] == "ok") {
            break;
        }
        assert!(Instant::now() < deadline, "rules not evaluated: {body}");
        std::thread::sleep(Duration::from_millis(200));
    }

    // Camera 2 is offline and not recording: pending (the `for` has not
    // passed), with its name joined from vms_camera_status.
    for alert in ["CameraOffline", "RecordingStopped", "RecordingDataStale"] {
        let got = prom.wait_for(
            &format!(r#"ALERTS{{alertname="{alert}"}}"#),
            Duration::from_secs(30),
        );
        assert_eq!(got.len(), 1, "{alert}: {got:?}");
        assert_eq!(got[0]["metric"]["camera_id"], "2", "{alert}");
        assert_eq!(got[0]["metric"]["camera_name"], "Praça", "{alert}");
    }
    // The restart counter appeared at 1: MediaMTXRestarting fires at once.
    let restarting = prom.wait_for(
        r#"ALERTS{alertname="MediaMTXRestarting",alertstate="firing"}"#,
        Duration::from_secs(30),
    );
    assert_eq!(restarting[0]["metric"]["severity"], "warning");
    // Healthy signals give no alert.
    for quiet in [
        "DiskAlmostFull",
        "DiskCritical",
        "MediaMTXDown",
        "SupervisorDown",
        "AlertDeliveryBacklog",
    ] {
        assert!(
            prom.query(&format!(r#"ALERTS{{alertname="{quiet}"}}"#))
                .is_empty(),
            "{quiet} is active"
        );
    }
}

// ------------------------------------------------- a real Alertmanager

/// A minimal HTTP/1.0 POST of a JSON body: `(status, body)`.
pub(crate) fn http_post_json(
    addr: SocketAddr,
    path: &str,
    body: &Json,
) -> Result<(u16, String), String> {
    let body = body.to_string();
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|e| format!("connect {addr}: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .map_err(|e| format!("write: {e}"))?;
    let mut raw = String::new();
    stream
        .read_to_string(&mut raw)
        .map_err(|e| format!("read: {e}"))?;
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("malformed response: {raw}"))?;
    Ok((status, body.to_string()))
}

/// A webhook receiver standing in for the daemon's `POST /api/alerts/webhook`:
/// every request's head and JSON body go to the returned channel.
pub(crate) fn webhook_receiver() -> (SocketAddr, std::sync::mpsc::Receiver<(String, Json)>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let Some((head, body)) = read_request(&mut conn) else {
                continue;
            };
            let _ = conn
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            let json = serde_json::from_slice(&body).unwrap_or(Json::Null);
            if tx.send((head, json)).is_err() {
                break;
            }
        }
    });
    (addr, rx)
}

/// A real Alertmanager with the shipped alertmanager.yml delivers to the
/// webhook with the token from credentials_file as a Bearer token, applies
/// the inhibitions, and sends "resolved".
#[test]
fn alertmanager_delivers_to_the_webhook_with_the_token_and_inhibits() {
    let binary = tool("prometheus-alertmanager", "prometheus-alertmanager");
    let dir = tempfile::tempdir().unwrap();
    let (hook, deliveries) = webhook_receiver();
    let token_file = dir.path().join("api-token");
    std::fs::write(&token_file, "s3cr3t-token\n").unwrap();
    // The shipped file, with only the daemon's address and the token path
    // pointed at this test's.
    let shipped = read("alertmanager.yml");
    let config = shipped
        .replace(
            "http://127.0.0.1:8000/api/alerts/webhook",
            &format!("http://{hook}/api/alerts/webhook"),
        )
        .replace("/etc/vms/api-token", token_file.to_str().unwrap());
    assert_ne!(config, shipped);
    std::fs::write(dir.path().join("alertmanager.yml"), config).unwrap();

    struct Kill(Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let am_log =
        || std::fs::read_to_string(dir.path().join("alertmanager.log")).unwrap_or_default();
    // As in TestPrometheus::start: retry if the free port was taken meanwhile.
    let mut started = None;
    for _attempt in 0..5 {
        let addr = free_port();
        let log = std::fs::File::create(dir.path().join("alertmanager.log")).unwrap();
        let mut am = Kill(
            Command::new(&binary)
                .arg(format!(
                    "--config.file={}",
                    dir.path().join("alertmanager.yml").display()
                ))
                .arg(format!(
                    "--storage.path={}",
                    dir.path().join("data").display()
                ))
                .arg(format!("--web.listen-address={addr}"))
                .arg("--cluster.listen-address=")
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap(),
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        let exited = loop {
            if matches!(http::get(addr, "/-/ready"), Ok((200, _))) {
                break None;
            }
            if let Some(status) = am.0.try_wait().unwrap() {
                break Some(status);
            }
            assert!(
                Instant::now() < deadline,
                "alertmanager not ready:\n{}",
                am_log()
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        match exited {
            None => {
                started = Some((am, addr));
                break;
            }
            Some(_) if am_log().contains("address already in use") => continue,
            Some(status) => panic!("alertmanager exited with {status}:\n{}", am_log()),
        }
    }
    let (_am, addr) = started.expect("alertmanager: no free port after 5 attempts");

    let alert = |labels: Json| {
        serde_json::json!({
            "labels": labels,
            "annotations": {"summary": "teste", "description": "teste"},
        })
    };
    let post = |alerts: Vec<Json>| {
        let (status, body) = http::post_json(addr, "/api/v2/alerts", &Json::Array(alerts)).unwrap();
        assert_eq!(status, 200, "{body}");
    };
    post(vec![
        alert(
            serde_json::json!({"alertname": "MediaMTXDown", "severity": "critical", "instance": "nvr:8000"}),
        ),
        // Inhibited by MediaMTXDown (same box: none).
        alert(
            serde_json::json!({"alertname": "CameraOffline", "severity": "critical", "camera_id": "1", "instance": "nvr:8000"}),
        ),
        // Another box: not inhibited.
        alert(
            serde_json::json!({"alertname": "CameraOffline", "severity": "critical", "camera_id": "1", "box": "b", "instance": "nvr-b:8000"}),
        ),
        alert(
            serde_json::json!({"alertname": "DiskCritical", "severity": "critical", "mount_point": "/rec", "instance": "nvr:8000"}),
        ),
        // Inhibited by DiskCritical.
        alert(
            serde_json::json!({"alertname": "DiskAlmostFull", "severity": "warning", "mount_point": "/rec", "instance": "nvr:8000"}),
        ),
    ]);

    // The group_wait of docs/design.md §7.5 (10 s), then one notification per group.
    let mut firing: BTreeMap<String, Json> = BTreeMap::new();
    while firing.len() < 3 {
        let (head, payload) = deliveries
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("only {firing:?} delivered:\n{}", am_log()));
        assert!(head.starts_with("POST /api/alerts/webhook "), "{head}");
        assert!(
            head.lines()
                .any(|l| l.eq_ignore_ascii_case("authorization: Bearer s3cr3t-token")),
            "no Bearer token from credentials_file: {head}"
        );
        assert_eq!(payload["receiver"], "vms-supervisor");
        assert_eq!(payload["status"], "firing");
        for a in payload["alerts"].as_array().unwrap() {
            let labels = &a["labels"];
            let key = format!(
                "{} {}",
                labels["alertname"].as_str().unwrap(),
                labels["box"].as_str().unwrap_or("-")
            );
            firing.insert(key, a.clone());
        }
    }
    assert_eq!(
        firing.keys().collect::<Vec<_>>(),
        ["CameraOffline b", "DiskCritical -", "MediaMTXDown -"],
        "inhibited alerts were delivered"
    );
    // Alertmanager's own view: the two follow-on alerts are suppressed.
    let (_, body) = http::get(addr, "/api/v2/alerts").unwrap();
    let alerts: Json = serde_json::from_str(&body).unwrap();
    let mut suppressed: Vec<String> = alerts
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["status"]["state"] == "suppressed")
        .map(|a| a["labels"]["alertname"].as_str().unwrap().to_string())
        .collect();
    suppressed.sort();
    assert_eq!(suppressed, ["CameraOffline", "DiskAlmostFull"], "{body}");

    // send_resolved: MediaMTX is back.
    let mut resolved = alert(
        serde_json::json!({"alertname": "MediaMTXDown", "severity": "critical", "instance": "nvr:8000"}),
    );
    resolved["endsAt"] = Json::String(chrono::Utc::now().to_rfc3339());
    post(vec![resolved]);
    loop {
        let (_, payload) = deliveries
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("no resolved notification:\n{}", am_log()));
        if payload["status"] == "resolved" {
            assert_eq!(payload["alerts"][0]["labels"]["alertname"], "MediaMTXDown");
            assert_eq!(payload["alerts"][0]["status"], "resolved");
            break;
        }
    }
}

// ------------------------------------------- the README's many-boxes guide

/// The ```yaml blocks of README.md's "Many boxes" section.
fn readme_many_boxes_snippets() -> Vec<String> {
    let readme = read("README.md");
    let section = readme
        .split("\n## ")
        .find(|s| s.starts_with("Many boxes"))
        .expect("README.md has no \"## Many boxes\" section");
    section
        .split("```yaml\n")
        .skip(1)
        .map(|block| block.split("```").next().unwrap().to_string())
        .collect()
}

/// The central-Prometheus configuration of README.md, loaded by a real
/// Prometheus: per-target `box` labels and the relabeling that derives
/// `box` from the address give every target the documented label.
#[test]
fn readme_many_boxes_config_labels_every_target_with_its_box() {
    let snippets = readme_many_boxes_snippets();
    assert!(snippets.len() >= 2, "{snippets:?}");
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("vms-api-token");
    std::fs::write(&token, "t0k3n\n").unwrap();
    let boxes = dir.path().join("boxes");
    std::fs::create_dir(&boxes).unwrap();
    // A file_sd file as the README describes: one site without a `box`.
    std::fs::write(boxes.join("site-3.yml"), "- targets: ['10.20.3.10:8000']\n").unwrap();

    // Block 1: static targets with `box` labels.
    let mut config: Yaml = serde_norway::from_str(&snippets[0]).unwrap();
    // Block 2: the file_sd + relabeling part of a job.
    let fragment: String = snippets[1]
        .lines()
        .map(|l| l.strip_prefix("    ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n");
    let mut sd_job: Yaml = serde_norway::from_str(&fragment).unwrap();
    sd_job["job_name"] = Yaml::from("vms-supervisor-sd");
    sd_job["file_sd_configs"][0]["files"][0] = Yaml::from(format!("{}/*.yml", boxes.display()));
    let jobs = config["scrape_configs"].as_sequence_mut().unwrap();
    for job in jobs.iter_mut() {
        if job["authorization"]["credentials_file"].is_string() {
            job["authorization"]["credentials_file"] = Yaml::from(token.display().to_string());
        }
    }
    jobs.push(sd_job);
    let prom = TestPrometheus::start(&serde_norway::to_string(&config).unwrap());

    // Relabeling happens at discovery: the labels show before any scrape
    // (the 10.20.x.x addresses are unreachable here).
    let deadline = Instant::now() + Duration::from_secs(30);
    let labels = loop {
        let (_, body) = http::get(prom.addr(), "/api/v1/targets").unwrap();
        let doc: Json = serde_json::from_str(&body).unwrap();
        let labels: BTreeSet<(String, String, String)> = doc["data"]["activeTargets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                let l = &t["labels"];
                let s = |k: &str| l[k].as_str().unwrap_or("").to_string();
                (s("job"), s("instance"), s("box"))
            })
            .collect();
        if labels.len() >= 5 || Instant::now() >= deadline {
            break labels;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let expected: BTreeSet<(String, String, String)> = [
        ("vms-supervisor", "10.20.1.10:8000", "escola-centro"),
        ("vms-supervisor", "10.20.2.10:8000", "praca-matriz"),
        ("node", "10.20.1.10:9100", "escola-centro"),
        ("node", "10.20.2.10:9100", "praca-matriz"),
        ("vms-supervisor-sd", "10.20.3.10:8000", "site-3"),
    ]
    .iter()
    .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
    .collect();
    assert_eq!(labels, expected);
}
