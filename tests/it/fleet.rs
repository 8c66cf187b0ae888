//! The fleet bundle: the box-side Prometheus agent (`monitoring/agent.yml`,
//! `agent.default`) and the central site (`monitoring/fleet/`), checked with
//! the real `promtool` and `amtool`, and run end to end on loopback: three
//! real daemons, each with its own `mediamtx-sim` and agent, remote-write to
//! one central Prometheus, which alerts through two clustered Alertmanagers.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value as Json;
use serde_norway::Value as Yaml;

use crate::harness::{free_port, http, Daemon, FakeTelegram, Setup};
use crate::monitoring::{
    amtool, expand_grafana_variables, metric_names, promql_parse_errors, promtool,
    queries_in_dashboard, query_api, run_ok, text, unknown_metric, url_encode, webhook_receiver,
};

use crate::monitoring::{monitoring, read, yaml};

/// The words of the first uncommented `ARGS="..."` line of a shipped
/// `/etc/default` file.
fn default_args(rel: &str) -> Vec<String> {
    read(rel)
        .lines()
        .find_map(|l| l.strip_prefix("ARGS=\""))
        .and_then(|rest| rest.strip_suffix('"'))
        .unwrap_or_else(|| panic!("monitoring/{rel} has no ARGS=\"...\" line"))
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// The rules that the centre pages for; every other alert is paged by the
/// box's own daemon (monitoring/fleet/README.md, "Who pages").
const CENTRE_PAGED: &[&str] = &[
    "BoxSilent",
    "SiteRecordingDegraded",
    "SupervisorDown",
    "AlertDeliveryBacklog",
];

/// Series the fleet dashboard shows that a box exports only when configured
/// so (the backup lag, with `[backup]` on; the boxes here have none): their
/// queries must run, and may come back empty.
const OPTIONAL_METRICS: &[&str] = &["vms_backup_lag_seconds"];

fn alert_names(rules: &Yaml) -> Vec<String> {
    rules["groups"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_sequence().unwrap())
        .filter_map(|r| r["alert"].as_str().map(str::to_string))
        .collect()
}

// ------------------------------------------------------------ the box side

#[test]
fn agent_config_scrapes_the_box_and_pushes_with_box_and_site() {
    let mut cmd = promtool();
    cmd.args(["check", "config"])
        .arg(monitoring().join("agent.yml"));
    let out = text(&run_ok(cmd));
    assert!(out.contains("SUCCESS"), "{out}");

    let cfg = yaml("agent.yml");
    assert_eq!(cfg["global"]["scrape_interval"], "15s");
    let labels = &cfg["global"]["external_labels"];
    assert!(
        labels["box"].is_string() && labels["site"].is_string(),
        "{labels:?}"
    );
    // The same three local targets as the single-box prometheus.yml.
    let jobs: BTreeMap<String, String> = cfg["scrape_configs"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|j| {
            (
                j["job_name"].as_str().unwrap().to_string(),
                j["static_configs"][0]["targets"][0]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        })
        .collect();
    let single: BTreeMap<String, String> = yaml("prometheus.yml")["scrape_configs"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|j| {
            (
                j["job_name"].as_str().unwrap().to_string(),
                j["static_configs"][0]["targets"][0]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        })
        .collect();
    assert_eq!(jobs, single);
    assert!(jobs.values().all(|t| t.starts_with("127.0.0.1:")));
    // Agent mode cannot evaluate rules or send alerts: the box's own
    // alerts come from the daemon.
    assert!(cfg["rule_files"].is_null() && cfg["alerting"].is_null());
    let rw = &cfg["remote_write"][0];
    assert!(rw["url"].as_str().unwrap().ends_with("/api/v1/write"));

    // agent.default: agent mode, loopback, and a write-ahead log that keeps
    // a day without uplink.
    let args = default_args("agent.default");
    assert!(
        args.contains(&"--enable-feature=agent".to_string()),
        "{args:?}"
    );
    assert!(
        args.iter()
            .any(|a| a.starts_with("--web.listen-address=127.0.0.1:")),
        "{args:?}"
    );
    let max_time = args
        .iter()
        .find_map(|a| a.strip_prefix("--storage.agent.retention.max-time="))
        .expect("agent.default does not set --storage.agent.retention.max-time");
    let hours: u64 = max_time
        .strip_suffix('h')
        .and_then(|h| h.parse().ok())
        .unwrap_or_else(|| panic!("max-time {max_time:?} is not in hours"));
    assert!(hours >= 24, "the WAL keeps {hours} h, less than a day");
    // And the centre accepts that old a sample.
    let window = yaml("fleet/prometheus.yml")["storage"]["tsdb"]["out_of_order_time_window"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(window, max_time, "the centre's out-of-order window");
}

// ----------------------------------------------------------- the central side

/// The central config with its two rule files beside it, in `dir`.
fn central_files(dir: &Path, fast: bool) -> PathBuf {
    let mut rules = vec![
        ("alerts.yml", yaml("alerts.yml")),
        ("fleet-alerts.yml", yaml("fleet/fleet-alerts.yml")),
    ];
    if fast {
        // Seconds instead of minutes: the rules' logic is covered by
        // promtool's unit tests, this run checks labels, routes and delivery.
        for (_, doc) in rules.iter_mut() {
            for group in doc["groups"].as_sequence_mut().unwrap() {
                if !group["interval"].is_null() {
                    group["interval"] = Yaml::from("1s");
                }
                for rule in group["rules"].as_sequence_mut().unwrap() {
                    if !rule["for"].is_null() {
                        // BoxSilent waits longer than the agents need to
                        // send their backlog after the centre restarts.
                        let wait = if rule["alert"] == "BoxSilent" {
                            "10s"
                        } else {
                            "3s"
                        };
                        rule["for"] = Yaml::from(wait);
                    }
                }
            }
        }
    }
    for (name, doc) in &rules {
        std::fs::write(dir.join(name), serde_norway::to_string(doc).unwrap()).unwrap();
    }
    let config = dir.join("prometheus.yml");
    std::fs::write(&config, read("fleet/prometheus.yml")).unwrap();
    config
}

#[test]
fn central_config_and_fleet_rules_are_valid() {
    let dir = tempfile::tempdir().unwrap();
    let config = central_files(dir.path(), false);
    let mut cmd = promtool();
    cmd.args(["check", "config"]).arg(&config);
    let out = text(&run_ok(cmd));
    assert!(out.contains("SUCCESS: 2 rule files found"), "{out}");

    let mut cmd = promtool();
    cmd.args(["test", "rules"])
        .arg(monitoring().join("fleet/tests/fleet_alerts_test.yml"));
    let out = text(&run_ok(cmd));
    assert!(out.contains("SUCCESS") && !out.contains("FAILED"), "{out}");

    // Every fleet rule fires in a case and stays quiet in another, and
    // carries pager="centre", box/site-keyed texts and a severity.
    let tests = yaml("fleet/tests/fleet_alerts_test.yml");
    let mut fires = BTreeSet::new();
    let mut quiet = BTreeSet::new();
    for case in tests["tests"].as_sequence().unwrap() {
        for t in case["alert_rule_test"].as_sequence().unwrap() {
            let name = t["alertname"].as_str().unwrap().to_string();
            match t["exp_alerts"].as_sequence() {
                Some(a) if !a.is_empty() => fires.insert(name),
                _ => quiet.insert(name),
            };
        }
    }
    let fleet_rules = yaml("fleet/fleet-alerts.yml");
    for group in fleet_rules["groups"].as_sequence().unwrap() {
        for rule in group["rules"].as_sequence().unwrap() {
            let name = rule["alert"].as_str().unwrap();
            assert!(
                fires.contains(name) && quiet.contains(name),
                "{name}: needs a firing and a quiet case"
            );
            assert_eq!(rule["labels"]["pager"], "centre", "{name}");
            assert!(rule["labels"]["severity"].is_string(), "{name}");
            let summary = rule["annotations"]["summary"].as_str().unwrap();
            assert!(summary.contains("$labels.site"), "{name}: {summary}");
            for metric in metric_names(rule["expr"].as_str().unwrap()) {
                if let Some(why) = unknown_metric(&metric) {
                    panic!("{name}: {why}");
                }
            }
        }
    }
    // The list of centre-paged rules is what prometheus.yml relabels.
    let names: BTreeSet<String> = alert_names(&fleet_rules)
        .into_iter()
        .chain(alert_names(&yaml("alerts.yml")))
        .collect();
    for n in CENTRE_PAGED {
        assert!(names.contains(*n), "{n} is not a rule");
    }
    let relabel = &yaml("fleet/prometheus.yml")["alerting"]["alert_relabel_configs"][0];
    let mut from_box: Vec<&str> = relabel["regex"].as_str().unwrap().split('|').collect();
    from_box.sort();
    let mut expected: Vec<&str> = CENTRE_PAGED
        .iter()
        .copied()
        .filter(|n| alert_names(&yaml("alerts.yml")).iter().any(|a| a == n))
        .collect();
    expected.sort();
    assert_eq!(from_box, expected);
}

/// `amtool config routes test` for these labels: the receivers, in order.
fn routes(labels: &[(&str, &str)]) -> Vec<String> {
    let mut cmd = amtool();
    cmd.args(["config", "routes", "test", "--config.file"])
        .arg(monitoring().join("fleet/alertmanager.yml"));
    for (k, v) in labels {
        cmd.arg(format!("{k}={v}"));
    }
    let out = run_ok(cmd);
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .split(',')
        .map(str::to_string)
        .collect()
}

/// The dedup rule, on the shipped Alertmanager config: an alert of the box
/// rules reaches no person (the box's daemon pages it); the centre's reach
/// Telegram and e-mail by severity and site, once.
#[test]
fn fleet_alertmanager_pages_each_incident_once() {
    let mut cmd = amtool();
    cmd.arg("check-config")
        .arg(monitoring().join("fleet/alertmanager.yml"));
    let out = text(&run_ok(cmd));
    assert!(
        out.contains("SUCCESS") && out.contains("1 templates"),
        "{out}"
    );

    let cfg = yaml("fleet/alertmanager.yml");
    let receiver = |name: &str| -> Yaml {
        cfg["receivers"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("no receiver {name}"))
            .clone()
    };
    let pages = |name: &str| {
        let r = receiver(name);
        !r["telegram_configs"].is_null() || !r["email_configs"].is_null()
    };
    assert!(!pages("registro") && !pages("ninguem"));
    assert!(receiver("registro")["webhook_configs"][0]["send_resolved"] == true);

    let box_rules = alert_names(&yaml("alerts.yml"));
    for alert in &box_rules {
        let pager = if CENTRE_PAGED.contains(&alert.as_str()) {
            "centre"
        } else {
            "box"
        };
        for severity in ["critical", "warning", "info"] {
            for site in ["escola-centro", "saude-norte"] {
                let got = routes(&[
                    ("alertname", alert),
                    ("pager", pager),
                    ("severity", severity),
                    ("site", site),
                    ("box", "nvr-001"),
                ]);
                assert_eq!(got[0], "registro", "{alert}: {got:?}");
                let people: Vec<&String> = got.iter().filter(|r| pages(r)).collect();
                match (pager, severity) {
                    ("box", _) | (_, "info") => {
                        assert!(people.is_empty(), "{alert} {severity} pages {people:?}")
                    }
                    _ => assert_eq!(people.len(), 1, "{alert} {severity} {site}: {got:?}"),
                }
            }
        }
    }
    // By site and severity.
    let critical = |site| {
        routes(&[
            ("alertname", "BoxSilent"),
            ("pager", "centre"),
            ("severity", "critical"),
            ("site", site),
        ])
    };
    assert_eq!(critical("escola-centro"), ["registro", "ti-plantao"]);
    assert_eq!(critical("saude-norte"), ["registro", "saude-plantao"]);
    assert!(!receiver("ti-plantao")["telegram_configs"].is_null());
    assert!(!receiver("ti-plantao")["email_configs"].is_null());
    let warning = routes(&[
        ("alertname", "SiteRecordingDegraded"),
        ("pager", "centre"),
        ("severity", "warning"),
        ("site", "escola-centro"),
    ]);
    assert_eq!(warning, ["registro", "ti-email"]);
    assert!(receiver("ti-email")["telegram_configs"].is_null());
    // An alert without the pager label (a rule added without updating the
    // relabeling) pages nobody twice: it is the box's.
    assert_eq!(
        routes(&[("alertname", "Novo"), ("severity", "critical")]),
        ["registro", "ninguem"]
    );
    let group_by: Vec<&str> = cfg["route"]["group_by"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for key in ["site", "box", "camera_id"] {
        assert!(group_by.contains(&key), "{group_by:?}");
    }
    // The pair gossips: alertmanager.default names a peer.
    let args = default_args("fleet/alertmanager.default");
    assert!(args.iter().any(|a| a.starts_with("--cluster.peer=")));
    // The central Prometheus sends to both.
    let targets = yaml("fleet/prometheus.yml")["alerting"]["alertmanagers"][0]["static_configs"][0]
        ["targets"]
        .as_sequence()
        .unwrap()
        .len();
    assert_eq!(targets, 2);
}

fn fleet_dashboard() -> Json {
    serde_json::from_str(&read("fleet/grafana/fleet.json")).unwrap()
}

#[test]
fn fleet_dashboard_is_well_formed_and_uses_known_metrics() {
    let dash = fleet_dashboard();
    assert_eq!(dash["uid"], "vms-fleet");
    let vars: Vec<&str> = dash["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(vars, ["datasource", "site", "box"]);
    let mut titles = BTreeSet::new();
    for panel in dash["panels"].as_array().unwrap() {
        let pos = &panel["gridPos"];
        assert!(pos["x"].as_u64().unwrap() + pos["w"].as_u64().unwrap() <= 24);
        titles.insert(panel["title"].as_str().unwrap().to_string());
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(panel["datasource"]["uid"], "${datasource}");
        for t in panel["targets"].as_array().unwrap() {
            let expr = t["expr"].as_str().unwrap();
            assert!(
                expr.contains(r#"site=~"$site""#) && expr.contains(r#"box=~"$box""#),
                "{}: ignores the site or box variable: {expr}",
                panel["title"]
            );
        }
    }
    // What issue 21 asks the fleet view to show.
    for t in [
        "Caixas reportando",
        "Caixas silenciosas",
        "Câmeras gravando por local",
        "Piores caixas",
        "Câmeras sem gravar, desde quando",
        "Dias de gravação por caixa",
        "Atraso do backup por caixa",
    ] {
        assert!(titles.contains(t), "no panel {t:?}");
    }
    let queries = queries_in_dashboard(&dash, "fleet.json");
    let mut problems = Vec::new();
    for (at, expr) in &queries {
        for name in metric_names(expr) {
            let known = ["ALERTS", "ALERTS_FOR_STATE"].contains(&name.as_str())
                || OPTIONAL_METRICS.contains(&name.as_str());
            if let (false, Some(why)) = (known, unknown_metric(&name)) {
                problems.push(format!("{at}: {why}"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    if let Err(e) = promql_parse_errors(&queries) {
        panic!("a fleet dashboard query does not parse:\n{e}");
    }
}

// ------------------------------------------------------- the fleet, running

/// A Prometheus, Alertmanager or node exporter process on loopback, its
/// output in `log`; restartable with the same arguments, killed on drop.
struct Service {
    name: String,
    binary: PathBuf,
    args: Vec<String>,
    addr: SocketAddr,
    ready: &'static str,
    log: PathBuf,
    child: Option<Child>,
}

impl Service {
    fn start(
        name: &str,
        binary: &Path,
        args: Vec<String>,
        addr: SocketAddr,
        ready: &'static str,
        dir: &Path,
    ) -> Service {
        let mut s = Service {
            name: name.to_string(),
            binary: binary.to_path_buf(),
            args,
            addr,
            ready,
            log: dir.join(format!("{name}.log")),
            child: None,
        };
        s.spawn();
        s
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut child = Command::new(&self.binary)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", self.binary.display()));
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("{} exited with {status}:\n{}", self.name, self.log());
            }
            if matches!(http::get(self.addr, self.ready), Ok((200, _))) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{} not ready:\n{}",
                self.name,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        self.child = Some(child);
    }

    fn signal(&mut self, sig: nix::sys::signal::Signal) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, sig);
        let deadline = Instant::now() + Duration::from_secs(90);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: a crash or a power cut.
    fn kill(&mut self) {
        self.signal(nix::sys::signal::Signal::SIGKILL);
    }

    /// SIGTERM, and wait for the exit.
    fn stop(&mut self) {
        self.signal(nix::sys::signal::Signal::SIGTERM);
    }

    fn log(&self) -> String {
        let mut log = std::fs::read_to_string(&self.log).unwrap_or_default();
        // A Prometheus agent's remote-write state, for failure messages.
        if let Ok((_, metrics)) = http::get(self.addr, "/metrics") {
            for line in metrics
                .lines()
                .filter(|l| l.starts_with("prometheus_remote_storage_") && !l.contains("bucket"))
            {
                log.push_str(line);
                log.push('\n');
            }
        }
        log
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill();
    }
}

fn binary(name: &str) -> Option<PathBuf> {
    let p = Path::new("/usr/bin").join(name);
    p.is_file().then_some(p)
}

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// A PromQL query evaluated at `time` (Unix seconds).
fn query_at(addr: SocketAddr, promql: &str, time: f64) -> Result<Vec<Json>, String> {
    let (status, body) = http::get(
        addr,
        &format!("/api/v1/query?query={}&time={time:.3}", url_encode(promql)),
    )?;
    let doc: Json = serde_json::from_str(&body).map_err(|e| format!("HTTP {status}: {e}"))?;
    match &doc["data"]["result"] {
        Json::Array(items) if doc["status"] == "success" => Ok(items.clone()),
        _ => Err(format!("HTTP {status}: {body}")),
    }
}

/// Polls `f` every 200 ms until it returns `Some`; panics with `context()`
/// after `timeout`.
async fn wait_until<T>(
    what: &str,
    timeout: Duration,
    mut f: impl FnMut() -> Option<T>,
    context: impl Fn() -> String,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > deadline {
            panic!(
                "timed out after {timeout:?} waiting for: {what}\n{}",
                context()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A local Telegram Bot API for Alertmanager: records every `sendMessage`
/// as (the `bot<token>` path segment, the JSON body) and answers with the
/// whole Message a real Bot API returns. Alertmanager 0.25 reads `chat.id`
/// from the answer and crashes (nil pointer) when it is missing, so the
/// daemon's stand-in (`harness::telegram`, which answers only the message
/// id) does not fit it.
async fn telegram_for_alertmanager() -> (SocketAddr, Arc<Mutex<Vec<(String, Json)>>>) {
    let seen: Arc<Mutex<Vec<(String, Json)>>> = Arc::default();
    let s = seen.clone();
    let app = axum::Router::new().route(
        "/{bot}/sendMessage",
        axum::routing::post(
            move |axum::extract::Path(bot): axum::extract::Path<String>,
                  axum::Json(body): axum::Json<Json>| {
                let s = s.clone();
                async move {
                    let chat: i64 = body["chat_id"]
                        .as_str()
                        .and_then(|c| c.parse().ok())
                        .or_else(|| body["chat_id"].as_i64())
                        .unwrap_or(0);
                    let text = body["text"].clone();
                    let n = {
                        let mut seen = s.lock().unwrap();
                        seen.push((bot, body));
                        seen.len()
                    };
                    axum::Json(serde_json::json!({
                        "ok": true,
                        "result": {
                            "message_id": n,
                            "date": now() as i64,
                            "chat": {"id": chat, "type": "supergroup", "title": "plantão"},
                            "text": text,
                        }
                    }))
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, seen)
}

/// A quoted-printable e-mail body decoded (soft line breaks and `=XX`).
fn quoted_printable(data: &str) -> String {
    let joined = data.replace("=\r\n", "").replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'=', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One box: its daemon (with its own stand-in) and its agent.
struct FleetBox {
    name: String,
    daemon: Daemon,
    agent: Service,
}

const SITES: [&str; 3] = ["escola-centro", "escola-centro", "saude-norte"];

/// Three boxes, the node exporter they share, the central Prometheus, the
/// Alertmanager pair, and the receivers standing in for the ticketing
/// webhook and the Telegram Bot API.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_boxes_push_to_one_centre_that_pages_once() {
    let (Some(prometheus), Some(alertmanager), Some(node_exporter)) = (
        binary("prometheus"),
        binary("prometheus-alertmanager"),
        binary("prometheus-node-exporter"),
    ) else {
        panic!(
            "three_boxes_push_to_one_centre_that_pages_once needs the Debian packages \
             prometheus, prometheus-alertmanager and prometheus-node-exporter (scripts/setup)"
        );
    };
    let dir = tempfile::tempdir().unwrap();
    let t0 = Instant::now();

    // Receivers.
    let (tg_addr, tg_seen) = telegram_for_alertmanager().await;
    let (hook, hook_rx) = webhook_receiver();
    let registro: Arc<Mutex<Vec<Json>>> = Arc::default();
    {
        let registro = registro.clone();
        std::thread::spawn(move || {
            while let Ok((_, payload)) = hook_rx.recv() {
                registro.lock().unwrap().push(payload);
            }
        });
    }

    // The Alertmanager pair, from the shipped files.
    let am_dir = dir.path().join("alertmanager");
    std::fs::create_dir_all(&am_dir).unwrap();
    std::fs::copy(
        monitoring().join("fleet/fleet.tmpl"),
        am_dir.join("fleet.tmpl"),
    )
    .unwrap();
    let mut am_cfg = yaml("fleet/alertmanager.yml");
    am_cfg["route"]["group_wait"] = Yaml::from("1s");
    am_cfg["route"]["group_interval"] = Yaml::from("5s");
    let (smtp_addr, mails) = crate::alerting::smtp().await;
    let global = &mut am_cfg["global"];
    global["smtp_smarthost"] = Yaml::from(smtp_addr.to_string());
    global["smtp_require_tls"] = Yaml::from(false);
    let g = global.as_mapping_mut().unwrap();
    g.remove("smtp_auth_username");
    g.remove("smtp_auth_password_file");
    for r in am_cfg["receivers"].as_sequence_mut().unwrap() {
        if let Some(hooks) = r["webhook_configs"].as_sequence_mut() {
            for h in hooks {
                h["url"] = Yaml::from(format!("http://{hook}/alertmanager"));
            }
        }
        if let Some(tgs) = r["telegram_configs"].as_sequence_mut() {
            for t in tgs {
                t["api_url"] = Yaml::from(format!("http://{tg_addr}"));
            }
        }
    }
    let am_config = am_dir.join("alertmanager.yml");
    std::fs::write(&am_config, serde_norway::to_string(&am_cfg).unwrap()).unwrap();
    let shipped_am_args = default_args("fleet/alertmanager.default");
    let gossip = [loopback(), loopback()];
    let am_web = [loopback(), loopback()];
    let mut ams: Vec<Service> = (0..2)
        .map(|i| {
            let mut args: Vec<String> = shipped_am_args
                .iter()
                .map(|a| {
                    if a.starts_with("--cluster.listen-address=") {
                        format!("--cluster.listen-address={}", gossip[i])
                    } else if a.starts_with("--cluster.peer=") {
                        format!("--cluster.peer={}", gossip[1 - i])
                    } else {
                        a.clone()
                    }
                })
                .collect();
            args.extend([
                format!("--config.file={}", am_config.display()),
                format!(
                    "--storage.path={}",
                    am_dir.join(format!("data-{i}")).display()
                ),
                format!("--web.listen-address={}", am_web[i]),
                // The wait of the second instance before it sends what the
                // first has not (15 s by default), shortened for the test.
                "--cluster.peer-timeout=3s".to_string(),
            ]);
            Service::start(
                &format!("alertmanager-{}", i + 1),
                &alertmanager,
                args,
                am_web[i],
                "/-/ready",
                dir.path(),
            )
        })
        .collect();

    // The central Prometheus, from the shipped files and flags.
    let central_dir = dir.path().join("central");
    std::fs::create_dir_all(&central_dir).unwrap();
    let central_config = central_files(&central_dir, true);
    let central_addr = loopback();
    let mut cfg: Yaml = serde_norway::from_str(&read("fleet/prometheus.yml")).unwrap();
    cfg["global"]["evaluation_interval"] = Yaml::from("1s");
    cfg["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] =
        Yaml::Sequence(am_web.iter().map(|a| Yaml::from(a.to_string())).collect());
    cfg["scrape_configs"][0]["static_configs"][0]["targets"][0] =
        Yaml::from(central_addr.to_string());
    std::fs::write(&central_config, serde_norway::to_string(&cfg).unwrap()).unwrap();
    let mut central_args = default_args("fleet/prometheus.default");
    central_args.extend([
        format!("--config.file={}", central_config.display()),
        format!("--storage.tsdb.path={}", central_dir.join("data").display()),
        format!("--web.listen-address={central_addr}"),
        // A series is "gone" 10 s after its last sample instead of 5 min,
        // so BoxSilent fires within the test.
        "--query.lookback-delta=10s".to_string(),
    ]);
    let mut central = Service::start(
        "central",
        &prometheus,
        central_args,
        central_addr,
        "/-/ready",
        dir.path(),
    );

    let node_addr = loopback();
    let _node = Service::start(
        "node-exporter",
        &node_exporter,
        vec![format!("--web.listen-address={node_addr}")],
        node_addr,
        "/metrics",
        dir.path(),
    );

    // Three boxes.
    let mut boxes = Vec::new();
    for (i, site) in SITES.iter().enumerate() {
        let name = format!("box-{}", i + 1);
        let daemon = Daemon::start(Setup::default());
        daemon.wait_all_recording(2).await;
        let sim = daemon.sim_state().await.unwrap();
        let mediamtx = sim["listeners"]["metrics"].as_str().unwrap().to_string();
        let mut cfg = yaml("agent.yml");
        cfg["global"]["scrape_interval"] = Yaml::from("1s");
        cfg["global"]["scrape_timeout"] = Yaml::from("1s");
        cfg["global"]["external_labels"]["box"] = Yaml::from(name.clone());
        cfg["global"]["external_labels"]["site"] = Yaml::from(*site);
        for job in cfg["scrape_configs"].as_sequence_mut().unwrap() {
            let target = match job["job_name"].as_str().unwrap() {
                "vms-supervisor" => daemon.api.to_string(),
                "mediamtx" => mediamtx.clone(),
                "node" => node_addr.to_string(),
                other => panic!("agent.yml: unexpected job {other}"),
            };
            job["static_configs"][0]["targets"][0] = Yaml::from(target);
        }
        let rw = &mut cfg["remote_write"][0];
        rw["url"] = Yaml::from(format!("http://{central_addr}/api/v1/write"));
        // Shorter batching and retry so the test sees the backlog replayed
        // within seconds (shipped: 5 s and 30 s).
        rw["queue_config"]["batch_send_deadline"] = Yaml::from("1s");
        rw["queue_config"]["max_backoff"] = Yaml::from("2s");
        let agent_dir = dir.path().join(&name);
        std::fs::create_dir_all(&agent_dir).unwrap();
        let config = agent_dir.join("agent.yml");
        std::fs::write(&config, serde_norway::to_string(&cfg).unwrap()).unwrap();
        let addr = loopback();
        let args: Vec<String> = default_args("agent.default")
            .into_iter()
            .filter(|a| !a.starts_with("--web.listen-address="))
            .chain([
                format!("--config.file={}", config.display()),
                format!("--storage.agent.path={}", agent_dir.join("wal").display()),
                format!("--web.listen-address={addr}"),
            ])
            .collect();
        let agent = Service::start(
            &format!("agent-{name}"),
            &prometheus,
            args,
            addr,
            "/-/ready",
            dir.path(),
        );
        boxes.push(FleetBox {
            name,
            daemon,
            agent,
        });
    }
    let logs = |services: &[&Service]| -> String {
        services
            .iter()
            .map(|s| format!("--- {}\n{}", s.name, tail(&s.log(), 80)))
            .collect::<Vec<_>>()
            .join("\n")
    };

    // Every box's three jobs arrive with box and site.
    let up = wait_until(
        "every box's three jobs at the centre",
        Duration::from_secs(60),
        || {
            let r = query_api(central_addr, r#"up{box!=""} == 1"#).ok()?;
            (r.len() == 9).then_some(r)
        },
        || logs(&[&central, &boxes[0].agent]),
    )
    .await;
    let got: BTreeSet<(String, String, String)> = up
        .iter()
        .map(|s| {
            let l = &s["metric"];
            let v = |k: &str| l[k].as_str().unwrap_or("").to_string();
            (v("box"), v("site"), v("job"))
        })
        .collect();
    for (i, b) in boxes.iter().enumerate() {
        for job in ["vms-supervisor", "mediamtx", "node"] {
            let key = (b.name.clone(), SITES[i].to_string(), job.to_string());
            assert!(got.contains(&key), "{key:?} not in {got:?}");
        }
    }
    // The daemon's series carry the agent's labels, its exposition none.
    wait_until(
        "camera series of every box",
        Duration::from_secs(30),
        || {
            let r = query_api(central_addr, r#"vms_camera_status{box!="",site!=""} == 1"#).ok()?;
            (r.len() == 6).then_some(())
        },
        || logs(&[&central]),
    )
    .await;
    assert!(!boxes[0].daemon.metrics().await.contains("box=\""));
    // Series per box, measured (README.md's scale estimate uses them).
    for row in query_api(central_addr, r#"count by (box, job) ({box!=""})"#).unwrap() {
        println!(
            "series: box={} job={} {}",
            row["metric"]["box"], row["metric"]["job"], row["value"][1]
        );
    }
    for b in &boxes {
        let pid = b.agent.child.as_ref().unwrap().id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let rss = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .unwrap_or("")
            .trim()
            .to_string();
        println!("agent {}: RSS {rss}", b.name);
    }
    println!("fleet up after {:?}", t0.elapsed());

    // --------------------------------------------------------------
    // The centre is down for a while (stopped, as for maintenance or a
    // reboot); the agents keep scraping into their WAL and send everything
    // when it is back. (A crash of the centre, SIGKILL, also loses the last
    // 1-4 s it had acknowledged: its own WAL page was not written yet. The
    // boxes cannot resend what the centre confirmed.)
    // (An agent's first scrape comes about 5 s after its start, when the
    // scrape manager applies its targets: wait until every box has a few
    // seconds of history.)
    wait_until(
        "five seconds of samples from every box",
        Duration::from_secs(30),
        || {
            let r = query_api(
                central_addr,
                r#"count_over_time(up{job="vms-supervisor",box!=""}[10s]) >= 5"#,
            )
            .ok()?;
            (r.len() == 3).then_some(())
        },
        || logs(&[&central]),
    )
    .await;
    let down_at = now();
    central.stop();
    let outage = Duration::from_secs(20);
    tokio::time::sleep(outage).await;
    central.spawn();
    let back_at = now();
    let window_start = down_at - 5.0;
    let window_end = back_at + 5.0;
    // Wait for the backlog, then look at every sample of the window.
    let gaps = |strict: bool| -> Option<String> {
        let mut problems = Vec::new();
        for b in &boxes {
            for sel in [
                format!(r#"up{{box="{}",job="vms-supervisor"}}"#, b.name),
                format!(r#"up{{box="{}",job="node"}}"#, b.name),
                format!(r#"vms_camera_status{{box="{}",camera_id="1"}}"#, b.name),
            ] {
                let range = (window_end - window_start).ceil() as u64;
                let r = query_at(central_addr, &format!("{sel}[{range}s]"), window_end).ok()?;
                let times: Vec<f64> = r
                    .first()
                    .and_then(|s| s["values"].as_array())
                    .map(|v| v.iter().map(|p| p[0].as_f64().unwrap()).collect())
                    .unwrap_or_default();
                // From the first sample before the stop (an agent started
                // a few seconds before it may have none earlier) to the
                // end of the window.
                let mut edges = times.clone();
                edges.push(window_end);
                let worst = edges.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max);
                // Scrapes every second: a gap over 2.5 s is a lost sample.
                if worst > 2.5 || times.first().is_none_or(|t| *t > down_at - 1.0) {
                    let offsets: Vec<String> = times
                        .iter()
                        .map(|t| format!("{:.1}", t - down_at))
                        .collect();
                    problems.push(format!(
                        "{sel}: {} samples, largest gap {worst:.1} s; seconds after the kill: {}",
                        times.len(),
                        offsets.join(" ")
                    ));
                }
            }
        }
        if problems.is_empty() || strict {
            Some(problems.join("\n"))
        } else {
            None
        }
    };
    let replayed_after = Instant::now();
    wait_until(
        "the agents' backlog at the centre",
        Duration::from_secs(60),
        || (now() > window_end + 2.0).then(|| gaps(false)).flatten(),
        || {
            let t = now();
            let raw = query_at(central_addr, r#"up{job="node"}[70s]"#, t).map(|r| {
                r.iter()
                    .map(|s| {
                        let v: Vec<String> = s["values"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|p| format!("{:.1}", p[0].as_f64().unwrap() - down_at))
                            .collect();
                        format!("{}: {}", s["metric"]["box"], v.join(" "))
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
            format!(
                "now {:.1}, back {:.1}, end {:.1}\n{}\n{}\n{}",
                t - down_at,
                back_at - down_at,
                window_end - down_at,
                raw.unwrap_or_default(),
                gaps(true).unwrap_or_default(),
                logs(&[&central, &boxes[0].agent, &boxes[1].agent, &boxes[2].agent])
            )
        },
    )
    .await;
    println!(
        "centre down {outage:?}: no sample lost, backlog in {:?}",
        replayed_after.elapsed()
    );

    // --------------------------------------------------------------
    // Both Alertmanagers gossip: a silent box pages once, to the site's
    // on-call Telegram chat.
    wait_until(
        "a two-member Alertmanager cluster",
        Duration::from_secs(30),
        || {
            let (_, body) = http::get(am_web[0], "/api/v2/status").ok()?;
            let doc: Json = serde_json::from_str(&body).ok()?;
            (doc["cluster"]["peers"].as_array()?.len() == 2 && doc["cluster"]["status"] == "ready")
                .then_some(())
        },
        || logs(&[&ams[0], &ams[1]]),
    )
    .await;
    // The centre's restart paged nobody: the boxes were back in time.
    assert!(
        tg_seen.lock().unwrap().is_empty(),
        "paged after the centre's restart: {:?}",
        tg_seen.lock().unwrap()
    );
    boxes[2].agent.stop();
    let silent_started = Instant::now();
    let is_box_silent = |(_, body): &(String, Json)| {
        body["text"]
            .as_str()
            .is_some_and(|t| t.contains("box-3") && t.contains("sem comunicação"))
    };
    let message = wait_until(
        "BoxSilent for box-3 on Telegram",
        Duration::from_secs(60),
        || {
            tg_seen
                .lock()
                .unwrap()
                .iter()
                .find(|m| is_box_silent(m))
                .cloned()
        },
        || {
            format!(
                "telegram: {:?}\nalerts: {:?}\n{}",
                tg_seen.lock().unwrap(),
                query_api(central_addr, "ALERTS"),
                logs(&[&ams[0], &ams[1], &central])
            )
        },
    )
    .await;
    println!(
        "BoxSilent paged {:?} after the agent stopped",
        silent_started.elapsed()
    );
    let text = message.1["text"].as_str().unwrap();
    assert!(text.contains("Local: saude-norte · Caixa: box-3"), "{text}");
    // And the e-mail of the health posts' on-call team, with site and box.
    let mail = wait_until(
        "BoxSilent for box-3 by e-mail",
        Duration::from_secs(30),
        || {
            mails
                .lock()
                .unwrap()
                .iter()
                .find(|m| m.data.contains("BoxSilent"))
                .cloned()
        },
        || logs(&[&ams[0], &ams[1]]),
    )
    .await;
    assert_eq!(mail.to, ["<saude-ti@prefeitura.example>"], "{mail:?}");
    let body = quoted_printable(&mail.data);
    assert!(
        body.contains("Local: saude-norte · Caixa: box-3") && !body.contains("<html"),
        "{body}"
    );
    // The health posts' chat (routing by site), not the IT team's.
    assert_eq!(
        message.1["chat_id"].to_string().trim_matches('"'),
        "-1001000000002"
    );
    assert!(message.0.contains("TROQUE-PELO-TOKEN-DO-BOT"));
    // Long enough for the second Alertmanager's turn (peer timeout 3 s)
    // and a group interval: still one message.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let box_silent_msgs = tg_seen
        .lock()
        .unwrap()
        .iter()
        .filter(|m| is_box_silent(m))
        .count();
    let box_silent_mails = mails
        .lock()
        .unwrap()
        .iter()
        .filter(|m| m.data.contains("BoxSilent"))
        .count();
    assert_eq!(box_silent_mails, 1, "{:?}", mails.lock().unwrap());
    assert_eq!(
        box_silent_msgs,
        1,
        "{:?}\n{}",
        tg_seen.lock().unwrap(),
        logs(&[&ams[0], &ams[1]])
    );

    // --------------------------------------------------------------
    // One Alertmanager dies; a camera of box 2 fails. The fleet alert
    // reaches the record once, with box and site, and no person: the box's
    // daemon pages camera incidents itself.
    ams[0].kill();
    let b2 = &boxes[1].daemon;
    b2.sim("POST", "/cameras/cam_2/down?mode=closed").await;
    let is_camera = |a: &Json| {
        a["labels"]["alertname"] == "CameraOffline"
            && a["labels"]["box"] == "box-2"
            && a["labels"]["camera_id"] == "2"
            && a["status"] == "firing"
    };
    let count_camera = || -> usize {
        registro
            .lock()
            .unwrap()
            .iter()
            .flat_map(|p| p["alerts"].as_array().cloned().unwrap_or_default())
            .filter(is_camera)
            .count()
    };
    let failed_at = Instant::now();
    wait_until(
        "CameraOffline of box-2 in the record",
        Duration::from_secs(60),
        || (count_camera() > 0).then_some(()),
        || {
            format!(
                "record: {:?}\nalerts: {:?}\n{}",
                registro.lock().unwrap(),
                query_api(central_addr, "ALERTS"),
                logs(&[&ams[1], &central])
            )
        },
    )
    .await;
    println!(
        "CameraOffline recorded {:?} after the fault",
        failed_at.elapsed()
    );
    let alert = registro
        .lock()
        .unwrap()
        .iter()
        .flat_map(|p| p["alerts"].as_array().cloned().unwrap_or_default())
        .find(is_camera)
        .unwrap();
    assert_eq!(alert["labels"]["site"], "escola-centro");
    assert_eq!(alert["labels"]["pager"], "box");
    assert!(
        alert["annotations"]["description"]
            .as_str()
            .unwrap()
            .ends_with("Caixa box-2, local escola-centro."),
        "{alert}"
    );
    // The dashboard queries, while a box is silent and a camera is down
    // (and no longer recording: the daemon says so a little after it
    // marks the camera offline).
    wait_until(
        "camera 2 of box-2 not recording, at the centre",
        Duration::from_secs(30),
        || {
            let r = query_api(
                central_addr,
                r#"vms_recording_active{box="box-2",camera_id="2"} == 0"#,
            )
            .ok()?;
            (!r.is_empty()).then_some(())
        },
        || logs(&[&central]),
    )
    .await;
    let dash = fleet_dashboard();
    let mut problems = Vec::new();
    for (at, expr) in queries_in_dashboard(&dash, "fleet.json") {
        let expr = expand_grafana_variables(&expr);
        let optional = OPTIONAL_METRICS.iter().any(|m| expr.contains(m));
        match query_api(central_addr, &expr) {
            Err(e) => problems.push(format!("{at}: {e}: {expr}")),
            Ok(r) if r.is_empty() && !optional => problems.push(format!("{at}: no data: {expr}")),
            Ok(_) => {}
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let silent = query_api(
        central_addr,
        &expand_grafana_variables(
            &queries_in_dashboard(&dash, "fleet.json")
                .into_iter()
                .find(|(at, _)| at.contains("Caixas silenciosas"))
                .unwrap()
                .1,
        ),
    )
    .unwrap();
    assert_eq!(silent[0]["value"][1], "1", "{silent:?}");

    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(count_camera(), 1, "{:?}", registro.lock().unwrap());
    let paged_camera: Vec<String> = tg_seen
        .lock()
        .unwrap()
        .iter()
        .filter_map(|(_, b)| b["text"].as_str().map(str::to_string))
        .filter(|t| t.contains("Câmera") || t.contains("CameraOffline"))
        .collect();
    assert!(
        paged_camera.is_empty(),
        "the centre paged a camera incident: {paged_camera:?}"
    );
    let mailed_camera = mails
        .lock()
        .unwrap()
        .iter()
        .filter(|m| m.data.contains("CameraOffline"))
        .count();
    assert_eq!(mailed_camera, 0, "the centre e-mailed a camera incident");
    println!("fleet test done in {:?}", t0.elapsed());
}

fn tail(text: &str, n: usize) -> String {
    crate::harness::tail(text, n)
}

// ------------------------------------------------ the box names itself

/// Issue 21: `[general] site` beside `box_name`, both in every Telegram text
/// and in `/api/status`, so a person reading a message from one of 200 boxes
/// knows where it comes from. Needs the `site` key in src/config (not there
/// yet: the daemon refuses the unknown key).
#[tokio::test]
async fn telegram_text_and_status_name_the_box_and_the_site() {
    let tg = FakeTelegram::ok().await;
    let camera_ids: Vec<(u32, String)> = vec![(1, "Portaria".into()), (2, "Pátio".into())];
    let monitor = "grace_period = \"2s\"\n";
    let extra = format!(
        "[alerts.telegram]\nenabled = true\nchat_id = \"-1001234\"\napi_base = \"{}\"\n",
        tg.base
    );
    let d = Daemon::start(Setup {
        cameras: camera_ids.clone(),
        monitor: monitor.into(),
        extra: extra.clone(),
        env: vec![("VMS_TELEGRAM_BOT_TOKEN".into(), "123:TESTTOKEN".into())],
        ..Setup::default()
    });
    d.wait_all_recording(2).await;
    // The same box, restarted with a box name and a site.
    let text = d.config_text(&camera_ids, monitor, &extra);
    let named = text.replacen(
        "box_name = \"teste\"",
        "box_name = \"nvr-017\"\nsite = \"escola-municipal-centro\"",
        1,
    );
    assert_ne!(named, text);
    d.write_config_text(&named);
    d.kill();
    d.spawn();
    let status = d.wait_all_recording(2).await;
    assert_eq!(status["box_name"], "nvr-017", "{status}");
    assert_eq!(status["site"], "escola-municipal-centro", "{status}");

    d.sim("POST", "/cameras/cam_2/down?mode=closed").await;
    let (_, body) = d
        .wait_for("a Telegram message", Duration::from_secs(40), || async {
            tg.requests()
                .first()
                .map(|r| (r.bot().to_string(), r.body.clone()))
        })
        .await;
    let text = body["text"].as_str().unwrap();
    assert!(
        text.contains("nvr-017") && text.contains("escola-municipal-centro"),
        "the camera alert does not say which box and site: {text}"
    );
}

// ------------------------------------------------------------ the scale run

/// The series of one `/metrics` answer (lines that are not comments).
fn series_in(exposition: &str) -> usize {
    exposition
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .count()
}

/// A loopback HTTP server answering `GET /<job>` with the captured
/// exposition of that job.
async fn serve_expositions(bodies: BTreeMap<String, String>) -> SocketAddr {
    let bodies = Arc::new(bodies);
    let app = axum::Router::new().route(
        "/{job}",
        axum::routing::get(
            move |axum::extract::Path(job): axum::extract::Path<String>| {
                let bodies = bodies.clone();
                async move {
                    match bodies.get(&job) {
                        Some(b) => (axum::http::StatusCode::OK, b.clone()),
                        None => (axum::http::StatusCode::NOT_FOUND, String::new()),
                    }
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| {
                    let p = e.path();
                    if p.is_dir() {
                        dir_bytes(&p)
                    } else {
                        e.metadata().map(|m| m.len()).unwrap_or(0)
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

/// One number from the Prometheus at `addr`.
fn scalar(addr: SocketAddr, promql: &str) -> f64 {
    query_api(addr, promql)
        .unwrap_or_else(|e| panic!("{promql}: {e}"))
        .first()
        .and_then(|r| r["value"][1].as_str().map(str::to_string))
        .unwrap_or_else(|| panic!("{promql}: no value"))
        .parse()
        .unwrap()
}

/// The central site's footprint for a fleet: a real box (the daemon with
/// 16 cameras, its stand-in, the node exporter) is scraped once to capture
/// its three expositions; one agent then scrapes them as VMS_FLEET_BOXES
/// boxes (default 200, each with its own `box` and `site`) at the shipped
/// 15 s and remote-writes to a central Prometheus started with the shipped
/// flags, for VMS_FLEET_MINUTES (default 10). Measured: series per box,
/// samples/s, the centre's memory and CPU, the agent's WAL bytes per
/// sample, and the bytes per sample of a TSDB block (a snapshot of the
/// head). Writes the "Fleet" section of BENCHMARKS.md (after
/// bench_write_benchmarks_md, which rewrites the file).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with scripts/bench"]
async fn bench_fleet_central_load() {
    let (Some(prometheus), Some(node_exporter)) =
        (binary("prometheus"), binary("prometheus-node-exporter"))
    else {
        panic!("bench_fleet_central_load needs the Debian packages prometheus and prometheus-node-exporter");
    };
    let boxes: usize = std::env::var("VMS_FLEET_BOXES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let minutes: u64 = std::env::var("VMS_FLEET_MINUTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let dir = tempfile::tempdir().unwrap();

    // One real box with 16 cameras.
    let cameras = 16;
    let d = Daemon::start(Setup {
        cameras: (1..=cameras).map(|i| (i, format!("Câmera {i}"))).collect(),
        ..Setup::default()
    });
    d.wait_all_recording(cameras as usize).await;
    let node_addr = loopback();
    let _node = Service::start(
        "node-exporter",
        &node_exporter,
        vec![format!("--web.listen-address={node_addr}")],
        node_addr,
        "/metrics",
        dir.path(),
    );
    let sim = d.sim_state().await.unwrap();
    let mediamtx: SocketAddr = sim["listeners"]["metrics"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let mut bodies = BTreeMap::new();
    bodies.insert("vms-supervisor".to_string(), d.metrics().await);
    bodies.insert(
        "mediamtx".to_string(),
        http::get(mediamtx, "/metrics").unwrap().1,
    );
    bodies.insert(
        "node".to_string(),
        http::get(node_addr, "/metrics").unwrap().1,
    );
    drop(d);
    // Each target adds up, scrape_duration_seconds, scrape_samples_scraped,
    // scrape_samples_post_metric_relabeling and scrape_series_added.
    let per_job: BTreeMap<String, usize> = bodies
        .iter()
        .map(|(job, b)| (job.clone(), series_in(b) + 5))
        .collect();
    let per_box: usize = per_job.values().sum();
    let server = serve_expositions(bodies).await;

    // The centre, with the shipped flags (and the admin API for the snapshot).
    let central_dir = dir.path().join("central");
    std::fs::create_dir_all(&central_dir).unwrap();
    let config = central_files(&central_dir, false);
    let central_addr = loopback();
    let mut cfg: Yaml = serde_norway::from_str(&read("fleet/prometheus.yml")).unwrap();
    cfg["scrape_configs"][0]["static_configs"][0]["targets"][0] =
        Yaml::from(central_addr.to_string());
    cfg["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] =
        Yaml::Sequence(vec![Yaml::from(loopback().to_string())]);
    std::fs::write(&config, serde_norway::to_string(&cfg).unwrap()).unwrap();
    let mut args = default_args("fleet/prometheus.default");
    args.extend([
        format!("--config.file={}", config.display()),
        format!("--storage.tsdb.path={}", central_dir.join("data").display()),
        format!("--web.listen-address={central_addr}"),
        "--web.enable-admin-api".to_string(),
    ]);
    let _central = Service::start(
        "central",
        &prometheus,
        args,
        central_addr,
        "/-/ready",
        dir.path(),
    );

    // One agent standing in for the whole fleet: the shipped agent.yml, one
    // target per box and job, `box`/`site` as target labels.
    let mut cfg = yaml("agent.yml");
    cfg["global"]
        .as_mapping_mut()
        .unwrap()
        .remove("external_labels");
    for job in cfg["scrape_configs"].as_sequence_mut().unwrap() {
        let name = job["job_name"].as_str().unwrap().to_string();
        job["metrics_path"] = Yaml::from(format!("/{name}"));
        let groups: Vec<Yaml> = (1..=boxes)
            .map(|b| {
                serde_norway::from_str(&format!(
                    "{{targets: ['{server}'], labels: {{box: nvr-{b:03}, site: local-{}}}}}",
                    b % 40
                ))
                .unwrap()
            })
            .collect();
        job["static_configs"] = Yaml::Sequence(groups);
    }
    cfg["remote_write"][0]["url"] = Yaml::from(format!("http://{central_addr}/api/v1/write"));
    // One agent sends for the whole fleet: let it use more connections.
    cfg["remote_write"][0]["queue_config"]["max_shards"] = Yaml::from(50);
    let agent_dir = dir.path().join("agent");
    std::fs::create_dir_all(&agent_dir).unwrap();
    let agent_config = agent_dir.join("agent.yml");
    std::fs::write(&agent_config, serde_norway::to_string(&cfg).unwrap()).unwrap();
    let agent_addr = loopback();
    let args: Vec<String> = default_args("agent.default")
        .into_iter()
        .filter(|a| !a.starts_with("--web.listen-address="))
        .chain([
            format!("--config.file={}", agent_config.display()),
            format!("--storage.agent.path={}", agent_dir.join("wal").display()),
            format!("--web.listen-address={agent_addr}"),
        ])
        .collect();
    let _agent = Service::start(
        "agent",
        &prometheus,
        args,
        agent_addr,
        "/-/ready",
        dir.path(),
    );

    let started = Instant::now();
    let expected = (boxes * per_box) as f64 * 0.95;
    wait_until(
        "every box's series at the centre",
        Duration::from_secs(300),
        || {
            let r = query_api(central_addr, "prometheus_tsdb_head_series").ok()?;
            let v: f64 = r.first()?["value"][1].as_str()?.parse().ok()?;
            (v >= expected).then_some(())
        },
        String::new,
    )
    .await;
    let cpu0 = scalar(
        central_addr,
        r#"process_cpu_seconds_total{job="prometheus"}"#,
    );
    let t0 = Instant::now();
    while started.elapsed() < Duration::from_secs(minutes * 60) {
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    let cpu = (scalar(
        central_addr,
        r#"process_cpu_seconds_total{job="prometheus"}"#,
    ) - cpu0)
        / t0.elapsed().as_secs_f64();
    let head_series = scalar(central_addr, "prometheus_tsdb_head_series");
    let rate = scalar(
        central_addr,
        r#"rate(prometheus_tsdb_head_samples_appended_total{job="prometheus"}[5m])"#,
    );
    let rss = scalar(
        central_addr,
        r#"process_resident_memory_bytes{job="prometheus"}"#,
    );
    let rss_max = scalar(
        central_addr,
        r#"max_over_time(process_resident_memory_bytes{job="prometheus"}[30m])"#,
    );
    // The agent's write-ahead log (snappy-compressed) per sample it took in.
    let agent_samples = {
        let (_, m) = http::get(agent_addr, "/metrics").unwrap();
        m.lines()
            .find_map(|l| l.strip_prefix("prometheus_remote_storage_samples_in_total "))
            .unwrap()
            .trim()
            .parse::<f64>()
            .unwrap()
    };
    let agent_wal = dir_bytes(&agent_dir.join("wal")) as f64;
    // A block cut from the head: its real bytes per sample.
    let (status, body) =
        crate::monitoring::http_post_json(central_addr, "/api/v1/admin/tsdb/snapshot", &Json::Null)
            .unwrap();
    assert_eq!(status, 200, "{body}");
    let name = serde_json::from_str::<Json>(&body).unwrap()["data"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let snap = central_dir.join("data/snapshots").join(name);
    let (mut chunk_bytes, mut index_bytes, mut samples, mut series) = (0u64, 0u64, 0u64, 0u64);
    for block in std::fs::read_dir(&snap).unwrap().flatten() {
        let meta: Json =
            serde_json::from_str(&std::fs::read_to_string(block.path().join("meta.json")).unwrap())
                .unwrap();
        samples += meta["stats"]["numSamples"].as_u64().unwrap();
        series += meta["stats"]["numSeries"].as_u64().unwrap();
        chunk_bytes += dir_bytes(&block.path().join("chunks"));
        index_bytes += std::fs::metadata(block.path().join("index")).unwrap().len();
    }
    // Chunks hold at most 120 samples; a short run fills them partly, so
    // this is an upper bound of what long blocks take per sample.
    let bytes_per_sample = chunk_bytes as f64 / samples as f64;
    let index_per_series = index_bytes as f64 / series as f64;
    let wal_per_sample = agent_wal / agent_samples;

    // The estimate for 200 boxes and 30 days, from these numbers.
    let per_box_rate = 1.0 / 15.0 * per_box as f64;
    let fleet_rate = 200.0 * per_box_rate;
    // Prometheus compacts blocks up to a tenth of the retention (3 days of
    // 30): about a dozen blocks, each with its own index of every series.
    let disk_30d = fleet_rate * 86_400.0 * 30.0 * bytes_per_sample
        + 200.0 * per_box as f64 * index_per_series * 12.0;
    let mem_per_series = rss_max / head_series;
    let agent_day = per_box_rate * 86_400.0 * wal_per_sample;
    let gib = |b: f64| b / (1u64 << 30) as f64;
    let mib = |b: f64| b / (1u64 << 20) as f64;
    let mut md = format!(
        "\n## Fleet: the central Prometheus\n\n\
         Produced by `bench_fleet_central_load` in `tests/it/fleet.rs` (run by `scripts/bench`):\n\
         one real box (the daemon with {cameras} cameras, its stand-in, the node exporter of this\n\
         machine) scraped once; one Prometheus agent (`monitoring/agent.yml`) scrapes those\n\
         expositions as {boxes} boxes every 15 s and remote-writes to a central Prometheus 2.42\n\
         started with `monitoring/fleet/prometheus.default`, for {minutes} minutes.\n\n\
         | Measure | Value |\n|---|---|\n"
    );
    for (job, n) in &per_job {
        md.push_str(&format!(
            "| Series per box, job `{job}` (incl. `up` and 4 scrape series) | {n} |\n"
        ));
    }
    md.push_str(&format!(
        "| Series per box, total | {per_box} |\n\
         | Samples/s per box at 15 s | {per_box_rate:.1} |\n\
         | Centre: head series ({boxes} boxes) | {head_series:.0} |\n\
         | Centre: samples appended/s | {rate:.0} |\n\
         | Centre: CPU (share of one core) | {:.1} % |\n\
         | Centre: RSS now / peak | {:.0} / {:.0} MiB |\n\
         | Centre: memory per active series (peak RSS / head series) | {:.1} KiB |\n\
         | TSDB chunk bytes per sample (snapshot of the head; chunks partly filled, an upper bound) | {bytes_per_sample:.2} B |\n\
         | TSDB index bytes per series and block | {index_per_series:.0} B |\n\
         | Agent WAL bytes per sample (snappy) | {wal_per_sample:.2} B |\n\
         | Estimate: 200 boxes, samples/s | {fleet_rate:.0} |\n\
         | Estimate: 200 boxes, 30 days of blocks (chunks + 12 indexes) | {:.1} GiB |\n\
         | Estimate: one box's agent WAL for a day without uplink | {:.0} MiB |\n",
        cpu * 100.0,
        mib(rss),
        mib(rss_max),
        mem_per_series / 1024.0,
        gib(disk_30d),
        mib(agent_day),
    ));
    let path = crate::harness::files::repo().join("BENCHMARKS.md");
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    let kept = old
        .split("\n## Fleet: the central Prometheus\n")
        .next()
        .unwrap()
        .trim_end()
        .to_string();
    std::fs::write(&path, format!("{kept}\n{md}")).unwrap();
    println!("{md}");
}
