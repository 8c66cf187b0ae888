//! HTTPS with the operator's own certificate (`[api] tls_cert`, `tls_key`).
//! A certificate authority (the city hall's, say) and a certificate it signs
//! for `nvr.test` are made at test time; the daemon serves the dashboard and
//! API over HTTPS on `tls_listen` while its plain listener on loopback keeps
//! serving this box's own programs: the CLI and MediaMTX's authorization
//! callback (and the harness, which reads the status through it).

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::{eventually, free_port, sim_binary, Daemon, Setup};

const PW: &str = "uma senha longa";
const NAME: &str = "nvr.test";

/// A certificate authority and a server certificate it signed for `name`.
struct Pki {
    ca: String,
    cert: String,
    key: String,
}

fn pki(name: &str) -> Pki {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "Prefeitura CA de teste");
    let ca = ca.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec![name.to_string()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    Pki {
        ca: ca.pem(),
        cert: leaf.pem(),
        key: key.serialize_pem(),
    }
}

/// Writes the pair as an operator (or a renewal script) would: each file
/// replaced by a rename, the key readable by its owner only.
fn install(dir: &Path, pki: &Pki) -> (PathBuf, PathBuf) {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    for (path, text, mode) in [(&cert, &pki.cert, 0o644), (&key, &pki.key, 0o600)] {
        let tmp = path.with_extension("new");
        std::fs::write(&tmp, text).unwrap();
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode)).unwrap();
        std::fs::rename(&tmp, path).unwrap();
    }
    (cert, key)
}

/// A browser of the LAN that trusts `ca` and reaches the box as `nvr.test`.
fn browser(ca: &str, tls: SocketAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).unwrap())
        .resolve(NAME, tls)
        .https_only(true)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

fn url(tls: SocketAddr, path: &str) -> String {
    format!("https://{NAME}:{}{path}", tls.port())
}

/// A daemon serving HTTPS with a certificate for `nvr.test` signed by a
/// test authority (installed in `certs`), both cameras recording: the
/// daemon, the authority's PKI, the HTTPS address and the pair's files.
async fn https_daemon(certs: &Path) -> (Daemon, Pki, SocketAddr, PathBuf, PathBuf) {
    let pki = pki(NAME);
    let (cert, key) = install(certs, &pki);
    let tls: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let d = Daemon::start(Setup {
        api: format!(
            "tls_cert = {cert:?}\ntls_key = {key:?}\ntls_listen = \"{tls}\"\nallowed_hosts = [\"{NAME}:{}\"]\n",
            tls.port()
        ),
        ..Setup::default()
    });
    // The harness reads the status through the plain loopback listener.
    d.wait_all_recording(2).await;
    (d, pki, tls, cert, key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_over_https_with_the_operator_s_certificate() {
    let certs = tempfile::tempdir().unwrap();
    let (d, first, tls, cert, key) = https_daemon(certs.path()).await;
    d.add_user("ana", "viewer", "", PW);

    // Log in over HTTPS, as the page does: the cookie is Secure.
    let b = browser(&first.ca, tls);
    let r = b
        .post(url(tls, "/api/login"))
        .json(&json!({ "user": "ana", "password": PW }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let set_cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    for attr in ["HttpOnly", "SameSite=Strict", "Secure"] {
        assert!(set_cookie.contains(attr), "{attr} in {set_cookie}");
    }
    let cookie = set_cookie.split(';').next().unwrap().to_string();
    let me: Value = r.json().await.unwrap();
    let media = me["media_token"].as_str().unwrap().to_string();
    let status: Value = b
        .get(url(tls, "/api/status"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["cameras"].as_array().unwrap().len(), 2, "{status}");
    let page = b.get(url(tls, "/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    // The certificate's end is a metric (the shipped rule pages two weeks
    // ahead): in the future, as this certificate's is.
    let metrics = d.metrics().await;
    let expiry: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("vms_tls_certificate_expiry_timestamp_seconds "))
        .unwrap_or_else(|| panic!("no expiry metric in {metrics}"))
        .trim()
        .parse()
        .unwrap();
    assert!(
        expiry > chrono::Utc::now().timestamp() as f64 + 86400.0,
        "{expiry}"
    );

    // A client that does not trust the city hall's authority gets nothing.
    let stranger = reqwest::Client::builder()
        .use_rustls_tls()
        .resolve(NAME, tls)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    assert!(stranger.get(url(tls, "/")).send().await.is_err());

    // Plain HTTP on the HTTPS port: told to use https, no API answer.
    let r = reqwest::get(format!("http://{tls}/api/status"))
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body = r.text().await.unwrap();
    assert!(
        body.contains("https://") && !body.contains("cameras"),
        "{body}"
    );

    // On the loopback listener (plain HTTP) the cookie is not Secure.
    let r = reqwest::Client::new()
        .post(format!("http://{}/api/login", d.api))
        .json(&json!({ "user": "ana", "password": PW }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(!r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Secure"));

    // The CLI talks to the loopback listener.
    let out = d.cli(&["status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("Online: 2"),
        "status: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // MediaMTX asks the loopback listener, and is given the certificate
    // for HLS and WebRTC (a page over HTTPS cannot fetch plain HTTP).
    let yml = std::fs::read_to_string(d.path("state/mediamtx.yml")).unwrap();
    let auth = format!(
        "authHTTPAddress: \"http://{}/internal/mediamtx/auth\"",
        d.api
    );
    for line in [
        auth.as_str(),
        "hlsEncryption: true",
        "webrtcEncryption: true",
        &format!("hlsServerKey: {key:?}"),
        &format!("webrtcServerCert: {cert:?}"),
    ] {
        assert!(yml.contains(line), "{line} in\n{yml}");
    }
    // Live video over HTTPS from MediaMTX (the stand-in serves HLS and
    // WHEP with the pair it was given), authorized by that callback with
    // the media token of the HTTPS session; plain HTTP gets nothing.
    let hls_at = browser(&first.ca, d.hls());
    let hls = |q: String| {
        let u = format!(
            "https://{NAME}:{}/cam_1/index.m3u8?cookieCheck=1{q}",
            d.hls().port()
        );
        // The first answer waits for the muxer's first segment.
        let r = hls_at.get(u).timeout(Duration::from_secs(30));
        async move { r.send().await.unwrap().status() }
    };
    assert_eq!(hls(format!("&token={media}")).await, 200);
    assert_eq!(hls(String::new()).await, 401);
    let plain = reqwest::get(format!("http://{}/cam_1/index.m3u8", d.hls()))
        .await
        .unwrap();
    assert_eq!(plain.status(), 400);
    let webrtc: SocketAddr = format!("127.0.0.1:{}", d.ports.webrtc).parse().unwrap();
    let r = browser(&first.ca, webrtc)
        .post(format!("https://{NAME}:{}/cam_1/whep", webrtc.port()))
        .header("content-type", "application/sdp")
        .bearer_auth(&media)
        .body(include_str!("../fixtures/webrtc/offer.sdp"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);

    // A renewed certificate (another authority, even) is served without a
    // restart, once both files are in place.
    let second = pki(NAME);
    install(certs.path(), &second);
    let renewed = browser(&second.ca, tls);
    eventually(
        "the renewed certificate",
        Duration::from_secs(10),
        || async { renewed.get(url(tls, "/")).send().await.is_ok() },
    )
    .await;
    // (A new client: `b` may still hold a connection made before.)
    let old = browser(&first.ca, tls);
    assert!(
        old.get(url(tls, "/")).send().await.is_err(),
        "the old one is gone"
    );

    // An edit naming a certificate that is not there: the reload is refused
    // naming the key, and HTTPS goes on with the files it has.
    let text = std::fs::read_to_string(&d.config_path).unwrap().replace(
        &format!("tls_cert = {cert:?}"),
        "tls_cert = \"/nonexistent/cert.pem\"",
    );
    d.write_config_text(&text);
    d.wait_status("the reload refused", Duration::from_secs(20), |s| {
        s["config_error"]
            .as_str()
            .is_some_and(|e| e.contains("api.tls_cert"))
    })
    .await;
    assert_eq!(
        renewed.get(url(tls, "/")).send().await.unwrap().status(),
        200
    );

    // The key never reaches the log.
    let logs = d.logs();
    for k in [&first.key, &second.key] {
        let body = k.lines().nth(1).unwrap();
        assert!(!logs.contains(body), "a key line in the log");
    }
}

/// Starts the daemon on `config` and waits (with a deadline) for its exit:
/// (exit code, standard error).
fn run_until_exit(config: &Path) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_vms-supervisor"))
        .arg("--config")
        .arg(config)
        .arg("run")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the daemon did not refuse to start");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_bad_certificate_or_key_stops_the_daemon_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let good = pki(NAME);
    let (cert, key) = install(dir.path(), &good);
    let open_key = dir.path().join("open-key.pem");
    std::fs::write(&open_key, &good.key).unwrap();
    std::fs::set_permissions(&open_key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let missing = dir.path().join("missing.pem");
    let config = dir.path().join("vms.toml");
    for (tls_cert, tls_key, want) in [
        (&missing, &key, "api.tls_cert"),
        (&cert, &open_key, "api.tls_key"),
    ] {
        std::fs::write(
            &config,
            format!(
                "[mediamtx]\nbinary = {sim:?}\n[state]\ndir = {state:?}\n[recording]\npath = {rec:?}\n\
                 [api]\nlisten = \"127.0.0.1:{port}\"\ntoken_file = {token:?}\ntls_cert = {tls_cert:?}\ntls_key = {tls_key:?}\n\
                 tls_listen = \"127.0.0.1:{tls_port}\"\n",
                sim = sim_binary(),
                state = dir.path().join("state"),
                rec = dir.path().join("rec"),
                port = free_port(),
                token = dir.path().join("api-token"),
                tls_port = free_port(),
            ),
        )
        .unwrap();
        let (code, stderr) = run_until_exit(&config);
        assert_eq!(code, Some(78), "{stderr}");
        assert!(stderr.contains(want), "{want} in {stderr}");
        assert!(!stderr.contains(good.key.lines().nth(1).unwrap()));
    }
}

/// A central Prometheus that scrapes the box from the LAN once TLS is on
/// (monitoring/README.md, "Pull instead"): the plain listener is loopback
/// only, so it scrapes `tls_listen` with `scheme: https`, the city hall's
/// authority, the certificate's name and the API token, and finds the
/// box's series under its `box` label.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_central_prometheus_scrapes_the_box_over_https() {
    let certs = tempfile::tempdir().unwrap();
    let (d, pki, tls, _, _) = https_daemon(certs.path()).await;
    let ca = certs.path().join("ca.pem");
    std::fs::write(&ca, &pki.ca).unwrap();
    let token = certs.path().join("vms-api-token");
    std::fs::write(&token, d.token()).unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    // What monitoring/README.md tells the IT team to write: the box's
    // address as the target (a Host the daemon always answers: the address
    // the connection came to) and the certificate's name as `server_name`.
    let config = format!(
        "global:\n  scrape_interval: 1s\n\
         scrape_configs:\n\
         \x20 - job_name: vms-supervisor\n\
         \x20   scheme: https\n\
         \x20   authorization:\n      credentials_file: {token:?}\n\
         \x20   tls_config:\n      ca_file: {ca:?}\n      server_name: {NAME}\n\
         \x20   static_configs:\n      - targets: ['{tls}']\n        labels: {{box: escola-centro}}\n",
    );
    let prom = crate::monitoring::TestPrometheus::start(&config);
    let up = prom.wait_for(
        "up{job=\"vms-supervisor\",box=\"escola-centro\"} == 1",
        Duration::from_secs(30),
    );
    assert_eq!(up.len(), 1);
    let recording = prom.wait_for(
        "sum(vms_recording_active{box=\"escola-centro\"}) == 2",
        Duration::from_secs(30),
    );
    assert_eq!(recording.len(), 1);
}
