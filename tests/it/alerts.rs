//! The alert pipeline against real servers: a Telegram Bot API stand-in
//! written here with axum, a real SMTP server (Debian's python3-aiosmtpd),
//! the real SQLite file, a real SIGKILL.

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use vms_supervisor::alerts::{self, AlertsHandle, PipelineOptions, RetryPolicy};
use vms_supervisor::config::Config;
use vms_supervisor::events::{AlertEvent, AlertSink, CameraRef, Issue, Phase, Severity};
use vms_supervisor::token::ApiToken;

use crate::harness::{eventually, free_port, FakeTelegram, Reply};

const TOKEN: &str = "123456:TEST-SECRET-TOKEN";
const EXAMPLE_TELEGRAM_TEXT: &str = "ALERTA CRÍTICO\n\
Câmera: Portaria Principal\n\
Caixa: nvr-teste\n\
Problema: Gravação não recuperada após 3 tentativas\n\
Horário: 14:35:22\n\
Ação: Verificar câmera fisicamente";

// ---------------------------------------------------------------- helpers

fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        initial: Duration::from_millis(50),
        max: Duration::from_millis(200),
        request_timeout: Duration::from_millis(400),
    }
}

fn options() -> PipelineOptions {
    PipelineOptions {
        retry: fast_retry(),
        tick: Duration::from_millis(200),
    }
}

#[derive(Default, Clone)]
struct Setup {
    telegram: Option<String>,
    smtp_port: Option<u16>,
    api_listen: Option<SocketAddr>,
    language: Option<&'static str>,
    /// `none` unless set.
    smtp_security: Option<&'static str>,
}

fn config(dir: &Path, s: Setup) -> Config {
    let token_file = dir.join("telegram-token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    std::fs::write(dir.join("api-token"), "api-secret\n").unwrap();
    let mut t = format!(
        "[general]\nbox_name = \"nvr-teste\"\n{}\
         [state]\ndir = {:?}\n[recording]\npath = {:?}\n\
         [api]\ntoken_file = {:?}\n{}\
         [alerts]\nreminder_after = \"0s\"\n",
        s.language
            .map(|l| format!("language = \"{l}\"\n"))
            .unwrap_or_default(),
        dir.join("state"),
        dir.join("rec"),
        dir.join("api-token"),
        s.api_listen
            .map(|a| format!("listen = \"{a}\"\n"))
            .unwrap_or_default(),
    );
    if let Some(base) = &s.telegram {
        t += &format!(
            "[alerts.telegram]\nenabled = true\nchat_id = \"-100777\"\napi_base = {base:?}\nbot_token_file = {token_file:?}\n"
        );
    }
    if let Some(port) = s.smtp_port {
        t += &format!(
            "[alerts.email]\nenabled = true\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {port}\nsecurity = \"{}\"\n\
             from = \"VMS <vms@prefeitura.example.gov.br>\"\n\
             to = [\"ti@prefeitura.example.gov.br\", \"seguranca@prefeitura.example.gov.br\"]\n",
            s.smtp_security.unwrap_or("none")
        );
    }
    t += "[[cameras]]\nid = 5\nname = \"Portaria Principal\"\nurl = \"rtsp://10.0.0.5:554/stream\"\n";
    std::fs::write(dir.join("written.toml"), &t).unwrap();
    Config::from_toml(&t).unwrap_or_else(|e| panic!("test config: {e}\n{t}"))
}

/// The example of docs/design.md §5.3: camera 5 stopped recording, 3 attempts, 14:35:22 in
/// São Paulo.
fn example_event() -> AlertEvent {
    use chrono::TimeZone;
    AlertEvent {
        at: Utc.with_ymd_and_hms(2026, 1, 5, 17, 35, 22).unwrap(),
        severity: Severity::Critical,
        phase: Phase::Firing,
        key: AlertEvent::camera_key(5, Issue::RecordingStopped),
        issue: Issue::RecordingStopped,
        camera: Some(CameraRef {
            id: 5,
            name: "Portaria Principal".into(),
        }),
        recovery_attempts: 3,
        last_recording: Some(Utc.with_ymd_and_hms(2026, 1, 5, 17, 20, 15).unwrap()),
        details: "no segment data for 902 s after level 2".into(),
    }
}

fn other_event(id: u32) -> AlertEvent {
    AlertEvent {
        key: AlertEvent::camera_key(id, Issue::CameraOffline),
        issue: Issue::CameraOffline,
        camera: Some(CameraRef {
            id,
            name: format!("Câmera {id}"),
        }),
        ..example_event()
    }
}

/// A test's alert pipeline, built up: its own directory and the channels it
/// sends to; [`Fixture::config`] writes the config, [`Fixture::start`] also
/// starts the pipeline on it.
struct Fixture {
    dir: tempfile::TempDir,
    setup: Setup,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture {
            dir: tempfile::tempdir().unwrap(),
            setup: Setup::default(),
        }
    }

    fn telegram(mut self, tg: &FakeTelegram) -> Fixture {
        self.setup.telegram = Some(tg.base.clone());
        self
    }

    /// Telegram at an address of the test's choosing (one nobody answers).
    fn telegram_at(mut self, base: String) -> Fixture {
        self.setup.telegram = Some(base);
        self
    }

    fn smtp(mut self, port: u16) -> Fixture {
        self.setup.smtp_port = Some(port);
        self
    }

    fn api(mut self, listen: SocketAddr) -> Fixture {
        self.setup.api_listen = Some(listen);
        self
    }

    fn language(mut self, language: &'static str) -> Fixture {
        self.setup.language = Some(language);
        self
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn config(&self) -> Config {
        config(self.dir.path(), self.setup.clone())
    }

    /// The pipeline running on the config.
    fn run(&self) -> Running {
        Running::start(&self.config())
    }

    /// The config and the pipeline running on it.
    fn start(&self) -> (Config, Running) {
        let cfg = self.config();
        let p = Running::start(&cfg);
        (cfg, p)
    }
}

struct Running {
    handle: AlertsHandle,
    sink: AlertSink,
    shutdown: CancellationToken,
}

impl Running {
    fn start(config: &Config) -> Running {
        let (sink, rx) = AlertSink::channel(64);
        let shutdown = CancellationToken::new();
        let handle = alerts::open(config)
            .expect("opening the alert database")
            .with_options(options())
            .start(rx, shutdown.clone());
        Running {
            handle,
            sink,
            shutdown,
        }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.handle.stopped().await;
    }
}

// ------------------------------------------------------ SMTP (aiosmtpd)

const SMTP_HANDLER: &str = r#"
import json
from email import message_from_bytes, policy

class Sink:
    async def handle_DATA(self, server, session, envelope):
        msg = message_from_bytes(envelope.content, policy=policy.default)
        # SMTP carries CRLF line ends; compare texts with LF.
        body = msg.get_body(preferencelist=("plain",)).get_content().replace("\r\n", "\n")
        print(json.dumps({
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "subject": str(msg["subject"]),
            "from": str(msg["from"]),
            "to": str(msg["to"]),
            "body": body,
        }), flush=True)
        return "250 OK"

# `python3 vms_test_smtp.py PORT LOGIN PASSWORD`: the same sink, requiring
# AUTH (over plain text, for the test only).
if __name__ == "__main__":
    import sys, threading
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    port, login, password = int(sys.argv[1]), sys.argv[2].encode(), sys.argv[3].encode()

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and \
            auth_data.login == login and auth_data.password == password
        # handled=False: aiosmtpd answers "535" itself on a failure.
        return AuthResult(success=ok, handled=False)

    Controller(Sink(), hostname="127.0.0.1", port=port, authenticator=authenticator,
               auth_required=True, auth_require_tls=False).start()
    threading.Event().wait()
"#;

/// Debian's python3 (the one with python3-aiosmtpd), not a pyenv shim.
fn python_with_aiosmtpd() -> PathBuf {
    for python in ["/usr/bin/python3", "python3"] {
        let ok = Command::new(python)
            .args(["-c", "import aiosmtpd"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return PathBuf::from(python);
        }
    }
    panic!("the SMTP tests need aiosmtpd: install the Debian package python3-aiosmtpd (scripts/setup does)");
}

struct Smtp {
    child: Child,
    messages: Arc<Mutex<Vec<Value>>>,
    _dir: tempfile::TempDir,
}

impl Smtp {
    /// Starts aiosmtpd on `port` and waits until it accepts connections.
    fn start(port: u16) -> Smtp {
        Smtp::spawn(port, None)
    }

    /// The same, requiring AUTH with this login and password.
    fn start_with_auth(port: u16, login: &str, password: &str) -> Smtp {
        Smtp::spawn(port, Some((login, password)))
    }

    fn spawn(port: u16, auth: Option<(&str, &str)>) -> Smtp {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("vms_test_smtp.py");
        std::fs::write(&script, SMTP_HANDLER).unwrap();
        let mut cmd = Command::new(python_with_aiosmtpd());
        match auth {
            None => cmd
                .args(["-u", "-m", "aiosmtpd", "-n", "-l"])
                .arg(format!("127.0.0.1:{port}"))
                .args(["-c", "vms_test_smtp.Sink"]),
            Some((login, password)) => cmd
                .arg("-u")
                .arg(&script)
                .arg(port.to_string())
                .args([login, password]),
        };
        let mut child = cmd
            .env("PYTHONPATH", dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting aiosmtpd");
        let stdout = child.stdout.take().unwrap();
        let messages = Arc::new(Mutex::new(Vec::new()));
        let sink = messages.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    sink.lock().unwrap().push(v);
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("aiosmtpd exited at start: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "aiosmtpd did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Smtp {
            child,
            messages,
            _dir: dir,
        }
    }

    async fn wait_messages(&self, n: usize, timeout: Duration) -> Vec<Value> {
        eventually(
            &format!("{n} e-mails at the SMTP server"),
            timeout,
            || async { self.messages.lock().unwrap().len() >= n },
        )
        .await;
        self.messages.lock().unwrap().clone()
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ----------------------------------------------------------------- tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telegram_gets_the_designs_message_within_a_second() {
    let tg = FakeTelegram::ok().await;
    let f = Fixture::new().telegram(&tg);
    let p = f.run();
    let sent = Instant::now();
    p.sink.send(example_event()).await;
    let reqs = tg.wait_requests(1, Duration::from_secs(5)).await;
    let latency = reqs[0].at - sent;
    eprintln!("alert latency, event sent -> Telegram request: {latency:?}");
    assert!(latency < Duration::from_secs(1), "took {latency:?}");
    assert_eq!(reqs[0].path, format!("/bot{TOKEN}/sendMessage"));
    assert_eq!(
        reqs[0].body,
        json!({"chat_id": "-100777", "text": EXAMPLE_TELEGRAM_TEXT})
    );

    // Acknowledged once.
    let h = p.handle.clone();
    eventually("the ack", Duration::from_secs(5), || async {
        h.outbox()
            .await
            .unwrap()
            .first()
            .is_some_and(|r| r.delivered_at.is_some())
    })
    .await;
    let row = &p.handle.outbox().await.unwrap()[0];
    assert_eq!(row.attempts, 1);

    // A repeat of the same alert is deduplicated; a new alert goes through.
    // The worker delivers in order, so once the new one arrived, the first
    // would have been re-sent already if it ever were.
    p.sink.send(example_event()).await;
    p.sink.send(other_event(6)).await;
    let reqs = tg.wait_requests(2, Duration::from_secs(5)).await;
    assert!(reqs[1].body["text"].as_str().unwrap().contains("Câmera 6"));
    assert_eq!(
        tg.texts()
            .iter()
            .filter(|t| *t == EXAMPLE_TELEGRAM_TEXT)
            .count(),
        1
    );
    assert_eq!(tg.requests().len(), 2);

    // The stored history has both events for camera 5, newest first.
    let (rows, total) = p
        .handle
        .list(
            alerts::Filter {
                camera_id: Some(5),
                ..Default::default()
            },
            10,
            0,
        )
        .await
        .unwrap();
    assert_eq!(total, 2);
    assert_eq!(rows[0].action, "repeated");
    assert_eq!(rows[1].action, "opened");
    assert_eq!(rows[1].message, "Gravação não recuperada após 3 tentativas");
    assert_eq!(p.handle.open_counts().await.unwrap().critical, 2);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telegram_500_429_and_timeouts_are_retried_and_sent_once() {
    let tg = FakeTelegram::start(vec![
        Reply::Status(500, json!({"ok": false, "error_code": 500, "description": "Internal Server Error"})),
        Reply::Status(
            429,
            json!({"ok": false, "error_code": 429, "description": "Too Many Requests: retry after 1",
                   "parameters": {"retry_after": 1}}),
        ),
        Reply::Hang(Duration::from_secs(3)),
        Reply::Ok,
    ])
    .await;
    let f = Fixture::new().telegram(&tg);
    let p = f.run();
    p.sink.send(example_event()).await;
    let reqs = tg.wait_requests(4, Duration::from_secs(10)).await;
    assert!(reqs.iter().all(|r| r.body["text"] == EXAMPLE_TELEGRAM_TEXT));
    // 429 retry_after = 1 s is honoured (the backoff alone is 100 ms).
    let after_429 = reqs[2].at - reqs[1].at;
    assert!(
        after_429 >= Duration::from_secs(1),
        "retried {after_429:?} after the 429"
    );
    // The timeout (400 ms) was retried without waiting for the hung reply.
    let after_hang = reqs[3].at - reqs[2].at;
    assert!(after_hang < Duration::from_secs(2), "{after_hang:?}");

    let h = p.handle.clone();
    eventually("the ack", Duration::from_secs(5), || async {
        h.outbox()
            .await
            .unwrap()
            .first()
            .is_some_and(|r| r.delivered_at.is_some())
    })
    .await;
    let row = &p.handle.outbox().await.unwrap()[0];
    assert_eq!(row.attempts, 4);
    assert_eq!(row.last_error, None);
    let stats = p.handle.outbox_stats().await.unwrap();
    assert_eq!((stats[0].depth, stats[0].delivered), (0, 1));

    // Nothing more for that alert: the next alert is the fifth request.
    p.sink.send(other_event(6)).await;
    let reqs = tg.wait_requests(5, Duration::from_secs(5)).await;
    assert!(reqs[4].body["text"].as_str().unwrap().contains("Câmera 6"));
    assert_eq!(
        tg.texts()
            .iter()
            .filter(|t| *t == EXAMPLE_TELEGRAM_TEXT)
            .count(),
        4
    );
    p.stop().await;
}

/// A Telegram 400 about the message itself fails that row only; the next
/// message goes out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telegram_message_refused_is_permanent_for_that_row() {
    let tg = FakeTelegram::start(vec![Reply::Status(
        400,
        json!({"ok": false, "error_code": 400, "description": "Bad Request: message is too long"}),
    )])
    .await;
    let f = Fixture::new().telegram(&tg);
    let p = f.run();
    p.sink.send(example_event()).await;
    let h = p.handle.clone();
    eventually("the permanent failure", Duration::from_secs(5), || async {
        h.outbox()
            .await
            .unwrap()
            .first()
            .is_some_and(|r| r.failed_at.is_some())
    })
    .await;
    let row = &p.handle.outbox().await.unwrap()[0];
    let err = row.last_error.as_deref().unwrap();
    assert!(err.contains("400") && err.contains("too long"), "{err}");
    assert!(
        !err.contains(TOKEN),
        "the token leaked into the error: {err}"
    );
    p.sink.send(other_event(6)).await;
    let reqs = tg.wait_requests(2, Duration::from_secs(5)).await;
    assert!(reqs[1].body["text"].as_str().unwrap().contains("Câmera 6"));
    assert!(p.handle.channel_errors().is_empty());
    p.stop().await;
}

/// Regression (a wrong `chat_id`): Telegram's 400 "chat not found" dropped
/// Critical alerts for good and nothing showed it. Now the channel is
/// broken, visibly, the messages wait in order, and they are sent once the
/// configuration is fixed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telegram_wrong_chat_id_is_visible_and_resent_after_the_fix() {
    vms_supervisor::metrics::install();
    let chat_not_found = Reply::Status(
        400,
        json!({"ok": false, "error_code": 400, "description": "Bad Request: chat not found"}),
    );
    let tg = FakeTelegram::start(vec![chat_not_found]).await;
    let f = Fixture::new().telegram(&tg);
    let (cfg, p) = f.start();
    p.sink.send(example_event()).await;
    p.sink.send(other_event(6)).await;
    let h = p.handle.clone();
    let errors = eventually("the broken channel", Duration::from_secs(5), || async {
        let e = h.channel_errors();
        (!e.is_empty()).then_some(e)
    })
    .await;
    assert_eq!(errors[0].0, alerts::Channel::Telegram);
    assert!(errors[0].1.contains("chat not found"), "{errors:?}");
    let metrics = vms_supervisor::metrics::render();
    assert!(
        metrics.contains("vms_alert_channel_up{channel=\"telegram\"} 0"),
        "{metrics}"
    );
    // One Critical alert says so (stored; e-mail would deliver it).
    let rows = p.handle.recent(10, None).await.unwrap();
    assert_eq!(
        rows.iter()
            .filter(|r| r.issue == Issue::AlertChannelFailed && r.phase == Phase::Firing)
            .count(),
        1,
        "{rows:?}"
    );
    // Nothing is dropped and nothing else is tried while it is broken.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(tg.requests().len(), 1);
    assert!(p
        .handle
        .outbox()
        .await
        .unwrap()
        .iter()
        .all(|r| r.failed_at.is_none()));
    // The fix: a reload. Everything waiting goes out, in order.
    p.handle.reload(&cfg);
    let reqs = tg.wait_requests(4, Duration::from_secs(10)).await;
    assert_eq!(
        reqs[1].body["text"], EXAMPLE_TELEGRAM_TEXT,
        "the first alert first"
    );
    // Camera 6's alert and the channel's own alert follow, in the order
    // they were stored: which came first depends on whether camera 6's
    // event reached the store before the first refusal did.
    let next: Vec<String> = reqs[2..4].iter().map(|r| r.text().to_string()).collect();
    assert!(
        next.iter().any(|t| t.contains("Câmera 6"))
            && next.iter().any(|t| t.contains("Canal de alertas")),
        "{:?}",
        tg.texts()
    );
    // ...and each left after the one stored before it.
    let mut delivered: Vec<(DateTime<Utc>, i64)> = p
        .handle
        .outbox()
        .await
        .unwrap()
        .iter()
        .filter_map(|r| Some((r.delivered_at?, r.id)))
        .collect();
    delivered.sort();
    assert!(
        delivered.windows(2).all(|w| w[0].1 < w[1].1),
        "delivered out of order: {delivered:?}"
    );
    eventually("the repaired channel", Duration::from_secs(5), || async {
        h.channel_errors().is_empty()
    })
    .await;
    p.stop().await;
}

/// Regression (a lock on `vms.db` during delivery): the message was sent
/// but its delivery could not be written, and the same page went out again
/// every few seconds while the lock lasted. The outcome is kept until it can
/// be written; one page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_lock_during_delivery_pages_once() {
    if std::process::Command::new("sqlite3")
        .arg("-version")
        .output()
        .is_err()
    {
        panic!("the sqlite3 command is missing (scripts/setup installs it)");
    }
    let tg = FakeTelegram::start(vec![Reply::Hang(Duration::from_millis(300))]).await;
    let f = Fixture::new().telegram(&tg);
    let p = f.run();
    p.sink.send(example_event()).await;
    tg.wait_requests(1, Duration::from_secs(5)).await;
    // While Telegram takes its time, an admin's shell locks the database
    // for longer than the busy timeout.
    let mut lock = std::process::Command::new("sqlite3")
        .arg(f.path().join("state/vms.db"))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let stdin = lock.stdin.as_mut().unwrap();
        writeln!(stdin, "BEGIN EXCLUSIVE; INSERT INTO silences VALUES (999, '2000-01-01T00:00:00.000Z', 'lock', '2000-01-01T00:00:00.000Z');").unwrap();
        stdin.flush().unwrap();
    }
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(
        tg.requests().len(),
        1,
        "sent again while the lock lasted: {:?}",
        tg.texts()
    );
    {
        use std::io::Write;
        writeln!(lock.stdin.as_mut().unwrap(), "ROLLBACK;").unwrap();
    }
    drop(lock.stdin.take());
    let _ = lock.wait();
    let h = p.handle.clone();
    eventually("the delivery recorded", Duration::from_secs(10), || async {
        h.outbox()
            .await
            .unwrap()
            .first()
            .is_some_and(|r| r.delivered_at.is_some())
    })
    .await;
    assert_eq!(tg.requests().len(), 1);
    p.stop().await;
}

/// Regression (order after a Telegram outage): "RESOLVIDO" arrived before
/// the alert it resolves and the backlog drained scrambled. Per channel,
/// messages leave in the order they were raised.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telegram_outage_keeps_the_order_of_messages() {
    let down = || Reply::Status(502, json!({"ok": false, "description": "Bad Gateway"}));
    let tg = FakeTelegram::start(vec![down(), down(), down(), down()]).await;
    let f = Fixture::new().telegram(&tg);
    let p = f.run();
    let opened = example_event();
    p.sink.send(opened.clone()).await;
    p.sink.send(other_event(6)).await;
    p.sink
        .send(AlertEvent {
            phase: Phase::Resolved,
            at: opened.at + chrono::Duration::seconds(30),
            ..opened
        })
        .await;
    p.sink.send(other_event(7)).await;
    let reqs = tg.wait_requests(8, Duration::from_secs(15)).await;
    let texts: Vec<&str> = reqs.iter().map(|r| r.text()).collect();
    // Every failure was the oldest message: nothing overtook it.
    assert!(
        texts[..4].iter().all(|t| *t == EXAMPLE_TELEGRAM_TEXT),
        "{texts:#?}"
    );
    assert_eq!(texts[4], EXAMPLE_TELEGRAM_TEXT);
    assert!(texts[5].contains("Câmera 6"), "{texts:#?}");
    assert!(texts[6].starts_with("RESOLVIDO"), "{texts:#?}");
    assert!(texts[7].contains("Câmera 7"), "{texts:#?}");
    // Once it is back, the backlog drains at once (no per-row backoff).
    let drain = reqs[7].at - reqs[4].at;
    assert!(drain < Duration::from_secs(1), "drained in {drain:?}");
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_arrives_with_subject_body_and_recipients() {
    let port = free_port();
    let smtp = Smtp::start(port);
    let f = Fixture::new().smtp(port);
    let p = f.run();
    p.sink.send(example_event()).await;
    let msgs = smtp.wait_messages(1, Duration::from_secs(10)).await;
    let m = &msgs[0];
    assert_eq!(m["mail_from"], "vms@prefeitura.example.gov.br");
    assert_eq!(
        m["rcpt_tos"],
        json!([
            "ti@prefeitura.example.gov.br",
            "seguranca@prefeitura.example.gov.br"
        ])
    );
    assert_eq!(
        m["subject"],
        "[VMS nvr-teste] ALERTA CRÍTICO: Portaria Principal - Gravação não recuperada após 3 tentativas"
    );
    let body = m["body"].as_str().unwrap();
    assert!(
        body.starts_with("ALERTA CRÍTICO\nCâmera: Portaria Principal (ID 5)\n"),
        "{body}"
    );
    assert!(
        body.contains("Problema: Gravação não recuperada após 3 tentativas\n"),
        "{body}"
    );
    assert!(
        body.contains("Horário: 05/01/2026 14:35:22 (America/Sao_Paulo)\n"),
        "{body}"
    );
    assert!(
        body.contains("Ação: Verificar câmera fisicamente\n"),
        "{body}"
    );
    assert!(
        body.contains("Última gravação: 05/01/2026 14:20:15\n"),
        "{body}"
    );
    assert!(
        body.contains("Detalhes: no segment data for 902 s after level 2\n"),
        "{body}"
    );

    // The resolved message follows.
    let mut resolved = example_event();
    resolved.phase = Phase::Resolved;
    resolved.severity = Severity::Info;
    resolved.at += chrono::Duration::minutes(10);
    p.sink.send(resolved).await;
    let msgs = smtp.wait_messages(2, Duration::from_secs(10)).await;
    assert!(
        msgs[1]["subject"]
            .as_str()
            .unwrap()
            .starts_with("[VMS nvr-teste] RESOLVIDO: Portaria Principal - "),
        "{}",
        msgs[1]["subject"]
    );
    assert!(msgs[1]["body"]
        .as_str()
        .unwrap()
        .contains("Duração: 10 min 00 s"));
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_down_then_up_delivers_when_it_returns() {
    let port = free_port();
    let f = Fixture::new().smtp(port);
    let p = f.run();
    p.sink.send(example_event()).await;
    let h = p.handle.clone();
    eventually(
        "two failed SMTP attempts",
        Duration::from_secs(10),
        || async {
            let rows = h.outbox().await.unwrap();
            rows.first()
                .is_some_and(|r| r.attempts >= 2 && r.last_error.is_some())
        },
    )
    .await;
    let row = &p.handle.outbox().await.unwrap()[0];
    assert!(row.delivered_at.is_none() && row.failed_at.is_none());
    eprintln!("while SMTP is down: {}", row.last_error.as_deref().unwrap());
    let stats = p.handle.outbox_stats().await.unwrap();
    assert_eq!(stats[1].depth, 1);

    let smtp = Smtp::start(port);
    let msgs = smtp.wait_messages(1, Duration::from_secs(10)).await;
    assert!(msgs[0]["subject"]
        .as_str()
        .unwrap()
        .contains("ALERTA CRÍTICO"));
    eventually("the ack", Duration::from_secs(5), || async {
        h.outbox()
            .await
            .unwrap()
            .first()
            .is_some_and(|r| r.delivered_at.is_some())
    })
    .await;
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_pipeline_delivers_what_the_old_one_left() {
    // First run: Telegram is unreachable.
    let dead = format!("http://127.0.0.1:{}", free_port());
    let f = Fixture::new().telegram_at(dead);
    let p = f.run();
    p.sink.send(example_event()).await;
    let h = p.handle.clone();
    eventually("a failed attempt", Duration::from_secs(5), || async {
        h.outbox()
            .await
            .unwrap()
            .first()
            .is_some_and(|r| r.attempts >= 1)
    })
    .await;
    p.stop().await;
    drop(h);

    // Second run on the same database, Telegram is back.
    let tg = FakeTelegram::ok().await;
    let f = f.telegram(&tg);
    let p = f.run();
    let reqs = tg.wait_requests(1, Duration::from_secs(5)).await;
    assert_eq!(reqs[0].body["text"], EXAMPLE_TELEGRAM_TEXT);
    p.sink.send(other_event(6)).await;
    tg.wait_requests(2, Duration::from_secs(5)).await;
    assert_eq!(
        tg.texts()
            .iter()
            .filter(|t| *t == EXAMPLE_TELEGRAM_TEXT)
            .count(),
        1
    );
    p.stop().await;
}

/// Helper process of `sigkill_then_restart_delivers`: stores an alert that
/// cannot be delivered, says so, and waits to be killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "helper process, run by sigkill_then_restart_delivers"]
async fn sigkill_child() {
    let dir = PathBuf::from(
        std::env::var("VMS_ALERTS_CHILD_DIR").expect("helper: VMS_ALERTS_CHILD_DIR is not set"),
    );
    let tg = std::env::var("VMS_ALERTS_CHILD_TELEGRAM").unwrap();
    let cfg = config(
        &dir,
        Setup {
            telegram: Some(tg),
            ..Default::default()
        },
    );
    let p = Running::start(&cfg);
    p.sink.send(example_event()).await;
    let h = p.handle.clone();
    eventually("a failed attempt", Duration::from_secs(10), || async {
        h.outbox()
            .await
            .unwrap()
            .first()
            .is_some_and(|r| r.attempts >= 1)
    })
    .await;
    println!("CHILD-READY");
    std::future::pending::<()>().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_then_restart_delivers() {
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().unwrap();
    // Telegram refuses connections while the child runs; it comes up on
    // the same address after the kill.
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "alerts::sigkill_child",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env("VMS_ALERTS_CHILD_DIR", dir.path())
        .env("VMS_ALERTS_CHILD_TELEGRAM", &base)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.contains("CHILD-READY") {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(30))
        .expect("the helper process never stored its alert");
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL));

    // The row is in the database, undelivered.
    let db = dir.path().join("state/vms.db");
    let store = alerts::Store::open(&db).unwrap();
    let rows = store.outbox().unwrap();
    assert_eq!(rows.len(), 1);
    assert!(rows[0].delivered_at.is_none());
    drop(store);

    // Restart with Telegram back on the same address.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let tg = FakeTelegram::serve(listener, vec![]);
    let cfg = config(
        dir.path(),
        Setup {
            telegram: Some(base),
            ..Default::default()
        },
    );
    let p = Running::start(&cfg);
    let reqs = tg.wait_requests(1, Duration::from_secs(5)).await;
    assert_eq!(reqs[0].body["text"], EXAMPLE_TELEGRAM_TEXT);
    let h = p.handle.clone();
    eventually("the ack", Duration::from_secs(5), || async {
        h.outbox()
            .await
            .unwrap()
            .first()
            .is_some_and(|r| r.delivered_at.is_some())
    })
    .await;
    p.stop().await;
}

async fn serve_api(handle: AlertsHandle, token: Option<&str>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = guarded_alerts(handle, token);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// The alert routes behind the API's guard, with this token.
fn guarded_alerts(handle: AlertsHandle, token: Option<&str>) -> axum::Router {
    let access = vms_supervisor::access::AccessHandle::start(
        vms_supervisor::access::Store::open_in_memory().unwrap(),
        vms_supervisor::access::Settings::default(),
    );
    vms_supervisor::http::auth::guarded(
        vms_supervisor::http::alerts::router(handle, access.clone()),
        vms_supervisor::http::auth::Gate {
            token: Arc::new(token.map(ApiToken::fixed).unwrap_or_else(ApiToken::none)),
            access,
            allowed_hosts: Arc::new(Vec::new()),
        },
    )
}

const AM_FIRING: &str = r#"{
  "receiver": "vms", "status": "firing", "version": "4", "truncatedAlerts": 0,
  "groupKey": "{}:{alertname=\"RecordingStopped\"}", "externalURL": "http://alertmanager:9093",
  "groupLabels": {"alertname": "RecordingStopped"}, "commonLabels": {"severity": "critical"},
  "commonAnnotations": {},
  "alerts": [{
    "status": "firing",
    "labels": {"alertname": "RecordingStopped", "camera_id": "5", "job": "vms", "severity": "critical"},
    "annotations": {"summary": "Gravação parou na câmera 5",
                    "description": "CRÍTICO: Gravação não está ativa há mais de 2 minutos"},
    "startsAt": "2026-01-05T17:35:22Z", "endsAt": "0001-01-01T00:00:00Z",
    "generatorURL": "http://prometheus:9090/graph", "fingerprint": "0123456789abcdef"
  }]
}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_webhook_goes_through_the_outbox() {
    let tg = FakeTelegram::ok().await;
    let f = Fixture::new().telegram(&tg);
    let p = f.run();
    let addr = serve_api(p.handle.clone(), Some("api-secret")).await;
    let url = format!("http://{addr}/api/alerts/webhook");
    let http = reqwest::Client::new();

    // No token, wrong token: 401 with a JSON error.
    let r = http.post(&url).body(AM_FIRING).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert!(
        v["error"].as_str().unwrap().contains("Authorization"),
        "{v}"
    );
    let r = http
        .post(&url)
        .bearer_auth("nope")
        .body(AM_FIRING)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // Malformed: 400 with a JSON error, nothing stored.
    let r = http
        .post(&url)
        .bearer_auth("api-secret")
        .body(r#"{"version":"4","alerts":[{"status":"firing","labels":{}}]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], "alerts[0].labels.alertname is missing");
    let r = http
        .post(&url)
        .bearer_auth("api-secret")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(p.handle.recent(10, None).await.unwrap().is_empty());

    // A real firing group: stored, pushed with the camera's configured name.
    let r = http
        .post(&url)
        .bearer_auth("api-secret")
        .body(AM_FIRING)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["stored"], 1);
    assert_eq!(v["alerts"][0]["action"], "opened");
    let reqs = tg.wait_requests(1, Duration::from_secs(5)).await;
    let text = reqs[0].body["text"].as_str().unwrap();
    assert!(
        text.starts_with(
            "ALERTA CRÍTICO\nCâmera: Portaria Principal\nCaixa: nvr-teste\nProblema: Gravação parou na câmera 5 (CRÍTICO"
        ),
        "{text}"
    );
    assert!(
        text.ends_with("\nAção: Ver o Alertmanager / Prometheus"),
        "{text}"
    );

    // Alertmanager repeats the group: deduplicated.
    let r = http
        .post(&url)
        .bearer_auth("api-secret")
        .body(AM_FIRING)
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["alerts"][0]["action"], "repeated");

    // Resolved: the RESOLVIDO message.
    let resolved = AM_FIRING
        .replace("\"status\": \"firing\"", "\"status\": \"resolved\"")
        .replace("0001-01-01T00:00:00Z", "2026-01-05T17:45:22Z");
    let r = http
        .post(&url)
        .bearer_auth("api-secret")
        .body(resolved)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let reqs = tg.wait_requests(2, Duration::from_secs(5)).await;
    let text = reqs[1].body["text"].as_str().unwrap();
    assert!(
        text.starts_with("RESOLVIDO\nCâmera: Portaria Principal\nCaixa: nvr-teste\n"),
        "{text}"
    );
    assert!(text.ends_with("Duração: 10 min 00 s"), "{text}");

    // GET /api/alerts: newest first, filters, paging (with the token: the
    // API reads nothing to anonymous callers).
    let http = reqwest::Client::builder()
        .default_headers(
            [(
                reqwest::header::AUTHORIZATION,
                "Bearer api-secret".parse().unwrap(),
            )]
            .into_iter()
            .collect(),
        )
        .build()
        .unwrap();
    let list: Value = http
        .get(format!("http://{addr}/api/alerts?limit=2"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["total"], 3);
    assert_eq!(list["alerts"].as_array().unwrap().len(), 2);
    assert_eq!(list["alerts"][0]["phase"], "resolved");
    assert_eq!(list["alerts"][0]["camera"], "Portaria Principal");
    assert_eq!(list["alerts"][0]["resolved"], true);
    let list: Value = http
        .get(format!(
            "http://{addr}/api/alerts?offset=2&severity=critical&camera_id=5"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // Alertmanager's resolved alert keeps its severity label.
    assert_eq!(list["total"], 3);
    assert_eq!(list["alerts"][0]["action"], "opened");
    assert_eq!(list["alerts"][0]["issue"], "external");
    let open: Value = http
        .get(format!("http://{addr}/api/alerts?open=true"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(open["total"], 0);
    let r = http
        .get(format!("http://{addr}/api/alerts?severity=loud"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert!(v["error"].as_str().unwrap().contains("severity"), "{v}");
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_without_a_configured_token_is_refused() {
    let f = Fixture::new();
    let p = f.run();
    let addr = serve_api(p.handle.clone(), None).await;
    let r = reqwest::Client::new()
        .post(format!("http://{addr}/api/alerts/webhook"))
        .bearer_auth("anything")
        .body(AM_FIRING)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert!(v["error"].as_str().unwrap().contains("no API token"), "{v}");
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_silence_through_the_api() {
    let tg = FakeTelegram::ok().await;
    let f = Fixture::new().telegram(&tg);
    let p = f.run();
    let addr = serve_api(p.handle.clone(), Some("api-secret")).await;
    let http = reqwest::Client::new();
    let r = http
        .post(format!("http://{addr}/api/alerts/silences"))
        .json(&json!({"camera_id": 5, "minutes": 60, "reason": "troca de lente"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = http
        .post(format!("http://{addr}/api/alerts/silences"))
        .bearer_auth("api-secret")
        .json(&json!({"camera_id": 5, "minutes": 60, "reason": "troca de lente"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let s: Value = http
        .get(format!("http://{addr}/api/alerts/silences"))
        .bearer_auth("api-secret")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(s["silences"][0]["camera_id"], 5);
    assert_eq!(s["silences"][0]["reason"], "troca de lente");

    // Camera 5 is silenced: stored, not pushed. Camera 6 pages.
    p.sink.send(example_event()).await;
    p.sink.send(other_event(6)).await;
    let reqs = tg.wait_requests(1, Duration::from_secs(5)).await;
    assert!(reqs[0].body["text"].as_str().unwrap().contains("Câmera 6"));
    let rows = p.handle.recent(10, None).await.unwrap();
    assert_eq!(rows.len(), 2);
    let cam5 = rows.iter().find(|r| r.camera_id == Some(5)).unwrap();
    assert!(cam5.silenced);

    // A camera id that is not a number: a JSON 400 like every other error.
    let r = http
        .delete(format!("http://{addr}/api/alerts/silences/abc"))
        .bearer_auth("api-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert!(v["error"].is_string(), "{v}");

    // Unsilence; the next repeat pages.
    let r = http
        .delete(format!("http://{addr}/api/alerts/silences/5"))
        .bearer_auth("api-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    p.sink.send(example_event()).await;
    let reqs = tg.wait_requests(2, Duration::from_secs(5)).await;
    assert_eq!(reqs[1].body["text"], EXAMPLE_TELEGRAM_TEXT);
    assert_eq!(tg.requests().len(), 2);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_lists_from_the_daemon_and_falls_back_to_the_database() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = listener.local_addr().unwrap();
    let f = Fixture::new().api(api);
    let (cfg, p) = f.start();
    p.sink.send(example_event()).await;
    let h = p.handle.clone();
    eventually("the stored alert", Duration::from_secs(5), || async {
        !h.recent(1, None).await.unwrap().is_empty()
    })
    .await;
    // The alert routes behind the guard, with the token the config names
    // (the CLI reads it as it does on a box).
    let app = guarded_alerts(p.handle.clone(), Some("api-secret"));
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let c = cfg.clone();
    let text = vms_supervisor::cli::alerts::recent_text(&c, 10)
        .await
        .unwrap();
    assert!(
        text.starts_with(&format!("source: running daemon (http://{api}/api/alerts")),
        "{text}"
    );
    assert!(
        text.contains("2026-01-05 14:35:22  CRITICAL  Portaria Principal        Gravação não recuperada após 3 tentativas  [open]"),
        "{text}"
    );

    // The daemon is gone: the database, read-only.
    server.abort();
    let _ = server.await;
    p.stop().await;
    drop(h);
    let c = cfg.clone();
    let text = vms_supervisor::cli::alerts::recent_text(&c, 10)
        .await
        .unwrap();
    assert!(text.starts_with("source: database "), "{text}");
    assert!(text.contains("vms.db"), "{text}");
    assert!(
        text.contains("Gravação não recuperada após 3 tentativas  [open]"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn english_texts_when_configured() {
    let tg = FakeTelegram::start(vec![]).await;
    let f = Fixture::new().telegram(&tg).language("en");
    let p = f.run();
    p.sink.send(example_event()).await;
    let reqs = tg.wait_requests(1, Duration::from_secs(5)).await;
    assert_eq!(
        reqs[0].body["text"],
        "CRITICAL ALERT\nCamera: Portaria Principal\nBox: nvr-teste\nProblem: Recording not recovered after 3 attempts\n\
         Time: 14:35:22\nAction: Check the camera physically"
    );
    p.stop().await;
}

/// A corrupt database is a clear error; the daemon's fallback, the same
/// pipeline in memory, still logs, stores (for the dashboard) and pages, and
/// says that the history is not durable. The damaged file is left as it was.
/// (Single-threaded: the log subscriber below is this thread's.)
#[tokio::test]
async fn corrupt_database_is_a_clear_error_and_alerts_are_still_sent_from_memory() {
    let tg = FakeTelegram::ok().await;
    let f = Fixture::new().telegram(&tg);
    let cfg = f.config();
    std::fs::create_dir_all(&cfg.state.dir).unwrap();
    let db = cfg.state.dir.join("vms.db");
    let junk = vec![0x5a; 8192];
    std::fs::write(&db, &junk).unwrap();
    let error = match alerts::open(&cfg) {
        Ok(_) => panic!("a corrupt database must not open"),
        Err(e) => e,
    };
    let err = error.to_string();
    assert!(
        err.starts_with(&format!("alert database {}: ", db.display())),
        "{err}"
    );
    assert!(err.contains("file is not a database"), "{err}");
    assert!(err.contains("move the file aside"), "{err}");

    let buf = Arc::new(Mutex::new(Vec::<u8>::new()));
    let writer = LogBuf(buf.clone());
    let subscriber = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let (sink, rx) = AlertSink::channel(4);
    let shutdown = CancellationToken::new();
    let handle = alerts::open_in_memory(&cfg, &error)
        .unwrap()
        .with_options(options())
        .start(rx, shutdown.clone());
    assert_eq!(handle.store_error(), Some(err.clone()));
    sink.send(example_event()).await;

    let reqs = tg.wait_requests(1, Duration::from_secs(5)).await;
    assert!(
        reqs[0].body["text"]
            .as_str()
            .unwrap()
            .contains("Gravação não recuperada após 3 tentativas"),
        "{:?}",
        reqs[0].body
    );
    let recent = handle.recent(10, None).await.unwrap();
    assert_eq!(recent.len(), 1, "the dashboard still lists it");
    shutdown.cancel();
    handle.stopped().await;

    let out = String::from_utf8(buf.lock().unwrap().clone()).unwrap();
    let line: Value = out
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["alert_level"] == "CRITICAL")
        .expect("the alert's log line");
    assert_eq!(line["camera_id"], 5);
    assert_eq!(line["issue"], "recording_stopped");
    assert_eq!(line["action"], "opened");
    assert_eq!(
        std::fs::read(&db).unwrap(),
        junk,
        "the damaged file is kept as it was"
    );
}

#[derive(Clone)]
struct LogBuf(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Debian's Alertmanager (package prometheus-alertmanager), with its config.
struct Alertmanager {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Alertmanager {
    fn binary() -> &'static str {
        let bin = "/usr/bin/prometheus-alertmanager";
        assert!(
            Path::new(bin).exists(),
            "{bin} is missing: install the Debian package prometheus-alertmanager (scripts/setup does)"
        );
        bin
    }

    async fn start(webhook: &str, token: &str) -> Alertmanager {
        let dir = tempfile::tempdir().unwrap();
        let config = format!(
            "route:\n  receiver: vms\n  group_by: ['alertname', 'camera_id']\n  group_wait: 0s\n  \
             group_interval: 1s\n  repeat_interval: 1h\n\
             receivers:\n  - name: vms\n    webhook_configs:\n      - url: '{webhook}'\n        \
             send_resolved: true\n        http_config:\n          authorization:\n            \
             credentials: '{token}'\n"
        );
        let config_file = dir.path().join("alertmanager.yml");
        std::fs::write(&config_file, config).unwrap();
        let port = free_port();
        let child = Command::new(Self::binary())
            .arg(format!("--config.file={}", config_file.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting prometheus-alertmanager");
        let mut am = Alertmanager {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        };
        let http = reqwest::Client::new();
        let ready = format!("{}/-/ready", am.url);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = http.get(&ready).send().await {
                if r.status().is_success() {
                    break;
                }
            }
            if let Ok(Some(status)) = am.child.try_wait() {
                panic!("prometheus-alertmanager exited at start: {status}");
            }
            assert!(Instant::now() < deadline, "Alertmanager never became ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        am
    }

    /// Posts one alert through Alertmanager's own API, as Prometheus does.
    async fn post(&self, alert: Value) {
        let r = reqwest::Client::new()
            .post(format!("{}/api/v2/alerts", self.url))
            .json(&json!([alert]))
            .send()
            .await
            .unwrap();
        assert!(
            r.status().is_success(),
            "Alertmanager refused the alert: {}",
            r.status()
        );
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_alertmanager_firing_and_resolved_reach_telegram() {
    let tg = FakeTelegram::ok().await;
    let f = Fixture::new().telegram(&tg);
    let p = f.run();
    let api = serve_api(p.handle.clone(), Some("api-secret")).await;
    let am = Alertmanager::start(&format!("http://{api}/api/alerts/webhook"), "api-secret").await;

    let starts = Utc::now();
    let alert = json!({
        "labels": {"alertname": "RecordingStopped", "camera_id": "5", "severity": "critical", "job": "vms"},
        "annotations": {"summary": "Gravação parou na câmera 5",
                        "description": "CRÍTICO: Gravação não está ativa há mais de 2 minutos"},
        "startsAt": starts.to_rfc3339(),
        "generatorURL": "http://prometheus:9090/graph"
    });
    am.post(alert.clone()).await;
    let reqs = tg.wait_requests(1, Duration::from_secs(15)).await;
    let text = reqs[0].body["text"].as_str().unwrap();
    assert!(
        text.starts_with(
            "ALERTA CRÍTICO\nCâmera: Portaria Principal\nCaixa: nvr-teste\nProblema: Gravação parou na câmera 5"
        ),
        "{text}"
    );

    // Resolve it: Alertmanager sends the resolved group, we send RESOLVIDO.
    let mut resolved = alert;
    resolved["endsAt"] = json!(Utc::now().to_rfc3339());
    am.post(resolved).await;
    let reqs = tg.wait_requests(2, Duration::from_secs(15)).await;
    let text = reqs[1].body["text"].as_str().unwrap();
    assert!(
        text.starts_with("RESOLVIDO\nCâmera: Portaria Principal\nCaixa: nvr-teste\n"),
        "{text}"
    );

    let rows = p.handle.recent(10, None).await.unwrap();
    assert!(rows
        .iter()
        .any(|r| r.action == "opened" && r.issue == Issue::External));
    assert!(rows.iter().any(|r| r.action == "resolved"));
    assert_eq!(p.handle.open_counts().await.unwrap().critical, 0);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_silence_through_the_daemon_and_the_database() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = listener.local_addr().unwrap();
    let f = Fixture::new().api(api);
    let (cfg, p) = f.start();
    let app = guarded_alerts(p.handle.clone(), Some("api-secret"));
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let c = cfg.clone();
    let out = vms_supervisor::cli::alerts::silence(&c, 5, Duration::from_secs(3600), "manutenção")
        .await
        .unwrap();
    assert!(
        out.contains("camera 5 silenced until") && out.contains("through the running daemon"),
        "{out}"
    );
    let s = p.handle.silences().await.unwrap();
    assert_eq!(
        (s.len(), s[0].camera_id, s[0].reason.as_str()),
        (1, 5, "manutenção")
    );
    let left = s[0].until - Utc::now();
    assert!(left > chrono::Duration::minutes(59) && left <= chrono::Duration::minutes(60));

    let c = cfg.clone();
    let out = vms_supervisor::cli::alerts::unsilence(&c, 5).await.unwrap();
    assert_eq!(out, "camera 5 is no longer silenced\n");
    assert!(p.handle.silences().await.unwrap().is_empty());

    // Daemon down: straight into the database, seen by the next start.
    server.abort();
    let _ = server.await;
    p.stop().await;
    let c = cfg.clone();
    let out = vms_supervisor::cli::alerts::silence(&c, 6, Duration::from_secs(600), "")
        .await
        .unwrap();
    assert!(out.contains("written to the database"), "{out}");
    let p = Running::start(&cfg);
    let s = p.handle.silences().await.unwrap();
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].camera_id, 6);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incidents_ledger_through_the_api() {
    let f = Fixture::new();
    let p = f.run();
    let addr = serve_api(p.handle.clone(), Some("api-secret")).await;
    let ev = example_event();
    p.sink.send(ev.clone()).await;
    let mut back = ev.clone();
    back.phase = Phase::Resolved;
    back.severity = Severity::Info;
    back.at = ev.at + chrono::Duration::minutes(15);
    back.details = "segment data flows again".into();
    p.sink.send(back.clone()).await;
    let h = p.handle.clone();
    eventually("the closed incident", Duration::from_secs(5), || async {
        h.incidents(Some(5), None, 10)
            .await
            .unwrap()
            .first()
            .is_some_and(|i| i.resolved_at.is_some())
    })
    .await;
    let v: Value = reqwest::Client::new()
        .get(format!("http://{addr}/api/alerts/incidents?camera_id=5"))
        .bearer_auth("api-secret")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let i = &v["incidents"][0];
    assert_eq!(i["issue"], "recording_stopped");
    assert_eq!(i["recording_gap_start"], "2026-01-05T17:20:15Z");
    assert_eq!(i["recording_gap_end"], "2026-01-05T17:50:22Z");
    assert_eq!(i["reason"], "no segment data for 902 s after level 2");
    assert_eq!(i["resolution"], "segment data flows again");
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_channel_does_not_hold_back_the_other() {
    let port = free_port();
    let smtp = Smtp::start(port);
    let (_cfg, p) = Fixture::new()
        .telegram_at(format!("http://127.0.0.1:{}", free_port()))
        .smtp(port)
        .start();
    p.sink.send(example_event()).await;
    smtp.wait_messages(1, Duration::from_secs(10)).await;
    let h = p.handle.clone();
    eventually(
        "e-mail delivered, Telegram still pending",
        Duration::from_secs(5),
        || async {
            let rows = h.outbox().await.unwrap();
            let tg = rows.iter().find(|r| r.channel == alerts::Channel::Telegram);
            let mail = rows.iter().find(|r| r.channel == alerts::Channel::Email);
            mail.is_some_and(|m| m.delivered_at.is_some())
                && tg.is_some_and(|t| t.delivered_at.is_none() && t.attempts >= 1)
        },
    )
    .await;
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_fails_while_running_is_handled_as_at_start() {
    let tg = FakeTelegram::start(vec![Reply::Status(500, json!({"ok": false}))]).await;
    let f = Fixture::new().telegram(&tg);
    let (cfg, p) = f.start();
    assert_eq!(p.handle.store_error(), None);
    // Break the database under the running pipeline.
    let c = rusqlite::Connection::open(cfg.state.dir.join("vms.db")).unwrap();
    c.execute_batch("DROP TABLE silences").unwrap();
    drop(c);

    // Stored all the same: in memory, as when the file cannot be opened at
    // start, with the Critical alert about it.
    p.handle.submit(example_event()).await.unwrap();
    let err = p.handle.store_error().unwrap();
    assert!(err.contains("no such table"), "{err}");
    let reqs = tg.wait_requests(3, Duration::from_secs(5)).await;
    assert!(
        reqs[0].text().contains("Banco de alertas inutilizável"),
        "{:?}",
        tg.texts()
    );
    assert_eq!(reqs[1].text(), reqs[0].text(), "the 500 is retried");
    assert_eq!(reqs[2].body["text"], EXAMPLE_TELEGRAM_TEXT);
    // Deduplicated and resolved as usual.
    p.handle.submit(example_event()).await.unwrap();
    let mut back = example_event();
    back.phase = Phase::Resolved;
    back.severity = Severity::Info;
    back.at += chrono::Duration::minutes(3);
    p.handle.submit(back).await.unwrap();
    let reqs = tg.wait_requests(4, Duration::from_secs(5)).await;
    assert!(
        reqs[3].text().starts_with("RESOLVIDO\n"),
        "{:?}",
        tg.texts()
    );
    let rows = p.handle.recent(10, None).await.unwrap();
    assert!(
        rows.iter().any(|r| r.issue == Issue::AlertStoreUnusable),
        "{rows:?}"
    );
    p.stop().await;
    assert_eq!(
        tg.texts()
            .iter()
            .filter(|t| *t == EXAMPLE_TELEGRAM_TEXT)
            .count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_and_tls_are_never_downgraded_to_plain_text() {
    // aiosmtpd here offers no TLS at all.
    let port = free_port();
    let smtp = Smtp::start(port);
    for security in ["starttls", "tls"] {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(
            dir.path(),
            Setup {
                smtp_port: Some(port),
                smtp_security: Some(security),
                ..Default::default()
            },
        );
        let p = Running::start(&cfg);
        p.sink.send(example_event()).await;
        let h = p.handle.clone();
        eventually(
            &format!("two failed {security} attempts"),
            Duration::from_secs(10),
            || async {
                h.outbox()
                    .await
                    .unwrap()
                    .first()
                    .is_some_and(|r| r.attempts >= 2)
            },
        )
        .await;
        let row = &p.handle.outbox().await.unwrap()[0];
        assert!(
            row.delivered_at.is_none() && row.failed_at.is_none(),
            "{row:?}"
        );
        eprintln!(
            "{security} against a plain server: {}",
            row.last_error.as_deref().unwrap()
        );
        p.stop().await;
    }
    assert!(
        smtp.messages.lock().unwrap().is_empty(),
        "a message went out in plain text"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_does_not_wait_for_a_hung_channel() {
    let tg = FakeTelegram::start(vec![Reply::Hang(Duration::from_secs(60))]).await;
    let f = Fixture::new().telegram(&tg);
    let cfg = f.config();
    let (sink, rx) = AlertSink::channel(8);
    let shutdown = CancellationToken::new();
    let slow = PipelineOptions {
        retry: RetryPolicy {
            request_timeout: Duration::from_secs(30),
            ..fast_retry()
        },
        ..options()
    };
    let handle = alerts::open(&cfg)
        .unwrap()
        .with_options(slow)
        .start(rx, shutdown.clone());
    sink.send(example_event()).await;
    tg.wait_requests(1, Duration::from_secs(5)).await;
    let asked = Instant::now();
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(2), handle.stopped())
        .await
        .expect("the pipeline did not stop within 2 s");
    eprintln!("stopped {:?} after the cancel", asked.elapsed());
    // The abandoned send is still pending, for the next start.
    let row = &handle.outbox().await.unwrap()[0];
    assert!(row.delivered_at.is_none() && row.failed_at.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_auth_wrong_password_fails_then_a_reload_with_the_right_one_delivers() {
    let port = free_port();
    let smtp = Smtp::start_with_auth(port, "vms@prefeitura.example.gov.br", "s3nha-boa");
    let dir = tempfile::tempdir().unwrap();
    config(
        dir.path(),
        Setup {
            smtp_port: Some(port),
            ..Default::default()
        },
    );
    // The same config plus a login, loaded as the daemon loads it.
    let with_password = |password: &str| {
        let pw = dir.path().join("smtp-password");
        std::fs::write(&pw, format!("{password}\n")).unwrap();
        let text = std::fs::read_to_string(dir.path().join("written.toml"))
            .unwrap()
            .replace(
                "[alerts.email]\n",
                &format!(
                    "[alerts.email]\nusername = \"vms@prefeitura.example.gov.br\"\npassword_file = {pw:?}\n"
                ),
            );
        Config::from_toml(&text).unwrap()
    };

    let p = Running::start(&with_password("errada"));
    p.sink.send(example_event()).await;
    let h = p.handle.clone();
    // A refused login is the channel's configuration: visible, and the
    // message waits for the fix instead of being dropped.
    let err = eventually("the broken channel", Duration::from_secs(10), || async {
        h.channel_error(alerts::Channel::Email)
    })
    .await;
    assert!(err.contains("535"), "{err}");
    assert!(!err.contains("errada"), "the password leaked: {err}");
    assert!(smtp.messages.lock().unwrap().is_empty());
    assert!(p.handle.outbox().await.unwrap()[0].failed_at.is_none());

    // The operator fixes the password file; the config reload retries.
    p.handle.reload(&with_password("s3nha-boa"));
    let msgs = smtp.wait_messages(1, Duration::from_secs(10)).await;
    assert!(msgs[0]["subject"]
        .as_str()
        .unwrap()
        .contains("ALERTA CRÍTICO"));
    eventually("the ack", Duration::from_secs(5), || async {
        h.outbox()
            .await
            .unwrap()
            .first()
            .is_some_and(|r| r.delivered_at.is_some())
    })
    .await;
    p.stop().await;
}
