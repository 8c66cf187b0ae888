//! Runs the real `vms-supervisor` binary against the `mediamtx-sim` stand-in,
//! in a temporary directory, on free ports, and lets tests wait for
//! observable conditions (the daemon's API, the stand-in's control endpoint,
//! files) with a deadline instead of sleeping.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod files;
pub mod http;
pub mod telegram;

pub use telegram::{FakeTelegram, Reply};

/// What a polled condition answers: `true`/`false`, or `Some(value)`.
pub trait Ready {
    type Value;
    fn ready(self) -> Option<Self::Value>;
}

impl Ready for bool {
    type Value = ();
    fn ready(self) -> Option<()> {
        self.then_some(())
    }
}

impl<T> Ready for Option<T> {
    type Value = T;
    fn ready(self) -> Option<T> {
        self
    }
}

/// Polls `f` every 10 ms until it is ready, or fails naming `what`.
pub async fn eventually<R, F, Fut>(what: &str, timeout: Duration, mut f: F) -> R::Value
where
    R: Ready,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = R>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await.ready() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The daemon binary under test: the one cargo built for this test binary,
/// or the one in `VMS_TEST_BIN_DIR` (scripts/bench points it at the release
/// build, so the benchmark measures what ships without building the tests
/// themselves with LTO).
pub fn daemon_binary() -> PathBuf {
    match std::env::var_os("VMS_TEST_BIN_DIR") {
        Some(dir) => PathBuf::from(dir).join("vms-supervisor"),
        None => PathBuf::from(env!("CARGO_BIN_EXE_vms-supervisor")),
    }
}

/// The stand-in, built by `cargo build --workspace` (scripts/test does it)
/// next to the daemon binary.
pub fn sim_binary() -> PathBuf {
    let sim = daemon_binary().with_file_name("mediamtx-sim");
    assert!(
        sim.is_file(),
        "{} is missing: build the workspace first (cargo build --workspace, as scripts/test does)",
        sim.display()
    );
    sim
}

/// A port free for TCP and UDP, below Linux's ephemeral range (32768-60999):
/// a port handed out by binding port 0 comes from that range and can be
/// taken by any outgoing connection (the daemon's own HTTP calls) before
/// the stand-in binds it. Ports are handed out in turn from a per-process
/// starting point, never twice in one test binary.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_000;
    let start = std::process::id().wrapping_mul(7919) % SPAN;
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        assert!(n < SPAN, "no free port left below the ephemeral range");
        let port = (LOW + (start + n) % SPAN) as u16;
        let tcp = TcpListener::bind(("127.0.0.1", port));
        let udp = std::net::UdpSocket::bind(("127.0.0.1", port));
        if tcp.is_ok() && udp.is_ok() {
            return port;
        }
    }
}

/// A dashboard session, as a browser holds it.
#[derive(Debug, Clone)]
pub struct Login {
    /// `vms_session=...`
    pub cookie: String,
    pub csrf: String,
    pub media: String,
    pub api: SocketAddr,
}

impl Login {
    /// A request with the session's cookie (and its CSRF token on changes),
    /// as the dashboard page sends it.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let change = !matches!(method, reqwest::Method::GET | reqwest::Method::HEAD);
        let mut r = reqwest::Client::new()
            .request(method, format!("http://{}{path}", self.api))
            .header("cookie", &self.cookie);
        if change {
            r = r.header("x-csrf-token", &self.csrf);
        }
        r
    }

    /// `GET path` as this person: the JSON body of a 200 (panics otherwise).
    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        let r = self
            .request(reqwest::Method::GET, path)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let body = r.text().await.unwrap();
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
    }
}

/// A random byte from the kernel.
fn rand_byte() -> u8 {
    use std::io::Read as _;
    let mut b = [0u8; 1];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut b)
        .unwrap();
    b[0]
}

pub struct Setup {
    pub cameras: Vec<(u32, String)>,
    /// Extra TOML appended to the config (sections not set by the harness).
    pub extra: String,
    /// `[monitor]` lines.
    pub monitor: String,
    /// `[mediamtx]` lines beyond the addresses.
    pub mediamtx: String,
    /// `[recording]` lines beyond the path.
    pub recording: String,
    /// The stand-in's faults document at start.
    pub faults: Option<Value>,
    pub env: Vec<(String, String)>,
    /// Listen on every interface instead of loopback (token required).
    pub api_any: bool,
    /// `[api]` lines beyond `listen` and `token_file`.
    pub api: String,
    /// Files written (relative to the test directory; `recordings/...`
    /// under the recordings root) before the start.
    pub files: Vec<(String, Vec<u8>)>,
    /// Mount a tmpfs of this many bytes under the recordings directory before
    /// the start (a real small filesystem that fills; needs root).
    pub recordings_tmpfs: Option<u64>,
    /// The same with an ext4 image of this many bytes (sparse, on the
    /// test directory's disk: for sizes that should not take memory).
    pub recordings_ext4: Option<u64>,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            cameras: vec![(1, "Portaria".into()), (2, "Estacionamento".into())],
            extra: String::new(),
            monitor: "grace_period = \"2s\"\n".into(),
            mediamtx: String::new(),
            recording: String::new(),
            faults: None,
            env: Vec::new(),
            api_any: false,
            api: String::new(),
            files: Vec::new(),
            recordings_tmpfs: None,
            recordings_ext4: None,
        }
    }
}

pub struct Daemon {
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    pub api: SocketAddr,
    pub control: SocketAddr,
    pub recordings: PathBuf,
    /// A filesystem is mounted on `disk`, the parent of `recordings`
    /// (unmounted at drop).
    tmpfs: bool,
    child: Mutex<Option<Child>>,
    pub log: Arc<Mutex<String>>,
    http: reqwest::Client,
    setup_mediamtx: String,
    setup_recording: String,
    setup_api: String,
    listen: String,
    pub ports: Ports,
    env: Vec<(String, String)>,
}

#[derive(Clone)]
/// The stand-in's listeners.
pub struct Ports {
    pub mtx_api: u16,
    pub metrics: u16,
    pub playback: u16,
    pub hls: u16,
    pub webrtc: u16,
    pub udp: u16,
    pub rtsp: u16,
}

impl Daemon {
    pub fn start(setup: Setup) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let api: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let listen = if setup.api_any {
            format!("0.0.0.0:{}", api.port())
        } else {
            api.to_string()
        };
        let control: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let ports = Ports {
            mtx_api: free_port(),
            metrics: free_port(),
            playback: free_port(),
            hls: free_port(),
            webrtc: free_port(),
            udp: free_port(),
            rtsp: free_port(),
        };
        let mut recordings = dir.path().join("recordings");
        let mounted = setup.recordings_tmpfs.is_some() || setup.recordings_ext4.is_some();
        if mounted {
            // The filesystem is mounted on the parent, so that the
            // recordings root itself can be deleted as an admin would.
            let disk = dir.path().join("disk");
            recordings = disk.join("recordings");
            std::fs::create_dir_all(&disk).unwrap();
            let mut mount = Command::new("mount");
            if let Some(size) = setup.recordings_tmpfs {
                mount.args([
                    "-t",
                    "tmpfs",
                    "-o",
                    &format!("size={size},mode=0755"),
                    "tmpfs",
                ]);
            } else if let Some(size) = setup.recordings_ext4 {
                let image = dir.path().join("disk.img");
                std::fs::File::create(&image)
                    .unwrap()
                    .set_len(size)
                    .unwrap();
                let out = Command::new("mkfs.ext4")
                    .args(["-q", "-F", "-m", "0"])
                    .arg(&image)
                    .output()
                    .expect("running mkfs.ext4");
                assert!(
                    out.status.success(),
                    "mkfs.ext4: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                mount.args(["-o", "loop"]).arg(&image);
            }
            let out = mount.arg(&disk).output().expect("running mount");
            assert!(
                out.status.success(),
                "mounting a filesystem on {} (the test needs root): {}",
                disk.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            std::fs::create_dir_all(&recordings).unwrap();
        }
        let config_path = dir.path().join("etc/vms.toml");
        std::fs::create_dir_all(config_path.parent().unwrap()).unwrap();
        let faults = dir.path().join("faults.json");
        if let Some(f) = &setup.faults {
            std::fs::write(&faults, f.to_string()).unwrap();
        }
        let mut d = Daemon {
            config_path,
            api,
            control,
            recordings,
            child: Mutex::new(None),
            log: Arc::new(Mutex::new(String::new())),
            http: reqwest::Client::new(),
            setup_mediamtx: setup.mediamtx.clone(),
            setup_recording: setup.recording.clone(),
            setup_api: setup.api.clone(),
            listen,
            ports,
            env: Vec::new(),
            tmpfs: mounted,
            dir,
        };
        d.write_config(&setup.cameras, &setup.monitor, &setup.extra);
        for (rel, bytes) in &setup.files {
            // `recordings/...` is under the recordings root wherever it is
            // (on a mounted filesystem: `disk/recordings`).
            let path = match rel.strip_prefix("recordings/") {
                Some(under) => d.recordings.join(under),
                None => d.dir.path().join(rel),
            };
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
        }
        // The API token, known before the start, so that every request of
        // the harness carries it (the daemon keeps an existing file).
        let token_file = d.dir.path().join("api-token");
        if !token_file.exists() {
            let token: String = (0..32).map(|_| format!("{:02x}", rand_byte())).collect();
            std::fs::write(&token_file, format!("{token}\n")).unwrap();
        }
        d.http = d.client();
        d.env = setup.env.clone();
        d.env.push(("MTXSIM_CONTROL".into(), control.to_string()));
        d.env
            .push(("MTXSIM_FAULTS".into(), faults.display().to_string()));
        d.spawn();
        d
    }

    /// Starts the daemon process (again, after a kill) on the same config.
    pub fn spawn(&self) {
        let mut cmd = Command::new(daemon_binary());
        cmd.arg("--config")
            .arg(&self.config_path)
            .arg("run")
            .env("RUST_LOG", "info")
            .env_remove("JOURNAL_STREAM")
            .env_remove("NOTIFY_SOCKET")
            // Not a systemd service (even when the tests run in one): SIGTERM
            // stops MediaMTX.
            .env_remove("INVOCATION_ID")
            // The stand-in pauses 0-4 s before refusing a reader with a
            // wrong credential, as MediaMTX does: not in tests that only
            // check who is refused.
            .env("MTXSIM_AUTH_PAUSE_MS", "0")
            // The stand-in's rendered camera pictures, shared by the tests
            // (not in $HOME).
            .env(
                "MTXSIM_CACHE_DIR",
                concat!(env!("CARGO_TARGET_TMPDIR"), "/mediamtx-sim-cache"),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("starting vms-supervisor");
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let log = self.log.clone();
            std::thread::spawn(move || {
                use std::io::BufRead;
                // Bytes, lossily: a `lines()` reader would stop at a line
                // that is not UTF-8, and the daemon would then block on a
                // full pipe.
                let mut reader = std::io::BufReader::new(stream);
                let mut buf = Vec::new();
                while reader.read_until(b'\n', &mut buf).is_ok_and(|n| n > 0) {
                    let mut l = log.lock().unwrap();
                    l.push_str(String::from_utf8_lossy(&buf).trim_end_matches('\n'));
                    l.push('\n');
                    buf.clear();
                }
            });
        }
        *self.child.lock().unwrap() = Some(child);
    }

    /// SIGKILL the daemon and reap it.
    pub fn kill(&self) {
        let mut guard = self.child.lock().unwrap();
        let child = guard.as_mut().unwrap();
        let _ = child.kill();
        let _ = child.wait();
    }

    /// The config text for these cameras (the harness's addresses and dirs).
    pub fn config_text(&self, cameras: &[(u32, String)], monitor: &str, extra: &str) -> String {
        let p = &self.ports;
        let mut s = format!(
            "[general]\nbox_name = \"teste\"\n\
             [mediamtx]\nbinary = {sim:?}\napi_address = \"127.0.0.1:{}\"\nmetrics_address = \"127.0.0.1:{}\"\n\
             playback_address = \"127.0.0.1:{}\"\nhls_address = \"127.0.0.1:{}\"\nwebrtc_address = \"127.0.0.1:{}\"\n\
             webrtc_local_udp_address = \"127.0.0.1:{}\"\nrtsp_address = \"127.0.0.1:{}\"\n{}\n\
             [recording]\npath = {:?}\n{}\n\
             [state]\ndir = {:?}\n\
             [api]\nlisten = \"{}\"\ntoken_file = {:?}\n{}\n\
             [monitor]\n{monitor}\n{extra}\n",
            p.mtx_api,
            p.metrics,
            p.playback,
            p.hls,
            p.webrtc,
            p.udp,
            p.rtsp,
            self.setup_mediamtx,
            self.recordings,
            self.setup_recording,
            self.dir.path().join("state"),
            self.listen,
            self.dir.path().join("api-token"),
            self.setup_api,
            sim = sim_binary(),
        );
        for (id, name) in cameras {
            s.push_str(&format!(
                "[[cameras]]\nid = {id}\nname = \"{name}\"\nurl = \"rtsp://10.0.0.{id}:554/stream\"\n"
            ));
        }
        s
    }

    /// Writes the config atomically (as an editor that renames would).
    pub fn write_config(&self, cameras: &[(u32, String)], monitor: &str, extra: &str) {
        let text = self.config_text(cameras, monitor, extra);
        self.write_config_text(&text);
    }

    pub fn write_config_text(&self, text: &str) {
        let tmp = self.config_path.with_extension("tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &self.config_path).unwrap();
    }

    pub fn token(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("api-token"))
            .unwrap()
            .trim()
            .to_string()
    }

    /// A client whose requests carry the API token (as the token file says
    /// now).
    pub fn client(&self) -> reqwest::Client {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Ok(t) = std::fs::read_to_string(self.dir.path().join("api-token")) {
            headers.insert(
                reqwest::header::AUTHORIZATION,
                format!("Bearer {}", t.trim()).parse().unwrap(),
            );
        }
        reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .default_headers(headers)
            .build()
            .unwrap()
    }

    /// A client whose requests carry the daemon's credential for MediaMTX
    /// (`<state>/mediamtx-credential`), as the daemon's own calls do.
    pub fn mediamtx_client(&self) -> reqwest::Client {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Ok(t) = std::fs::read_to_string(self.dir.path().join("state/mediamtx-credential")) {
            headers.insert(
                reqwest::header::AUTHORIZATION,
                format!("Bearer {}", t.trim()).parse().unwrap(),
            );
        }
        reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .default_headers(headers)
            .build()
            .unwrap()
    }

    /// Adds a dashboard user with the CLI (the password on standard input).
    pub fn add_user(&self, name: &str, role: &str, cameras: &str, password: &str) {
        use std::io::Write as _;
        let mut child = Command::new(env!("CARGO_BIN_EXE_vms-supervisor"))
            .arg("--config")
            .arg(&self.config_path)
            .args(["user", "add", name, "--role", role, "--cameras", cameras])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "user add {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Logs in through `POST /api/login`: the session.
    pub async fn login(&self, name: &str, password: &str) -> Login {
        let r = reqwest::Client::new()
            .post(format!("http://{}/api/login", self.api))
            .json(&serde_json::json!({ "user": name, "password": password }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "login of {name}");
        let cookie = r
            .headers()
            .get("set-cookie")
            .unwrap()
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string();
        let me: Value = r.json().await.unwrap();
        Login {
            cookie,
            csrf: me["csrf_token"].as_str().unwrap().to_string(),
            media: me["media_token"].as_str().unwrap().to_string(),
            api: self.api,
        }
    }

    /// The API token once the daemon has created it.
    pub async fn wait_token(&self) -> String {
        let path = self.dir.path().join("api-token");
        self.wait_for("the token file", Duration::from_secs(10), || async {
            std::fs::read_to_string(&path)
                .ok()
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
        })
        .await
    }

    pub fn logs(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    async fn get_json(&self, addr: SocketAddr, path: &str) -> Option<Value> {
        let resp = self
            .http
            .get(format!("http://{addr}{path}"))
            .send()
            .await
            .ok()?;
        resp.json().await.ok()
    }

    /// A GET on the daemon's API.
    pub async fn get(&self, path: &str) -> Option<Value> {
        self.get_json(self.api, path).await
    }

    /// Runs a `vms-supervisor` command (`status`, `camera reset 2`...)
    /// against this daemon's config.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_vms-supervisor"))
            .arg("--config")
            .arg(&self.config_path)
            .args(args)
            .output()
            .expect("running vms-supervisor")
    }

    pub async fn status(&self) -> Option<Value> {
        self.get("/api/status").await
    }

    /// Polls the daemon's `/api/status` until `cond` holds.
    pub async fn wait_status(
        &self,
        what: &str,
        timeout: Duration,
        cond: impl Fn(&Value) -> bool,
    ) -> Value {
        let cond = &cond;
        self.wait_for(what, timeout, || async move {
            self.status().await.filter(|s| cond(s))
        })
        .await
    }

    /// The daemon's `/metrics` text.
    pub async fn metrics(&self) -> String {
        self.http
            .get(format!("http://{}/metrics", self.api))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Lets `period` pass while the daemon keeps running: for assertions that
    /// something does NOT happen (no further attempts, no faster restarts).
    pub async fn observe(&self, period: Duration) {
        let t0 = Instant::now();
        self.wait_for(
            "an observation period",
            period + Duration::from_secs(5),
            || async { (t0.elapsed() >= period).then_some(()) },
        )
        .await
    }

    /// Polls `f` until it returns `Some`.
    pub async fn wait_for<T, F, Fut>(&self, what: &str, timeout: Duration, mut f: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = Instant::now() + timeout;
        loop {
            self.assert_running(what);
            if let Some(v) = f().await {
                return v;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out after {timeout:?} waiting for: {what}\nlast status: {}\ndaemon log tail:\n{}",
                    self.status().await.map(|s| s.to_string()).unwrap_or_default(),
                    tail(&self.logs(), 40)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The daemon's exit status, if it has exited.
    fn exit_status(&self) -> Option<ExitStatus> {
        self.child
            .lock()
            .unwrap()
            .as_mut()
            .unwrap()
            .try_wait()
            .unwrap()
    }

    fn assert_running(&self, what: &str) {
        let status = self.exit_status();
        if let Some(st) = status {
            panic!(
                "the daemon exited ({st}) while waiting for: {what}\n{}",
                tail(&self.logs(), 60)
            );
        }
    }

    /// Everything online and recording.
    pub async fn wait_all_recording(&self, n: usize) -> Value {
        self.wait_status(
            &format!("{n} cameras online and recording"),
            Duration::from_secs(30),
            |s| {
                let cams = s["cameras"].as_array().unwrap();
                s["mediamtx"]["up"] == true
                    && cams.len() == n
                    && cams
                        .iter()
                        .all(|c| c["state"] == "online" && c["recording"] == true)
            },
        )
        .await
    }

    /// Waits until the daemon's recovery has removed and re-created `path`
    /// in the stand-in (a new path has written no part yet). A re-created
    /// path has a fresh recorder, which the stand-in's `stall` fault does not
    /// model: tests clear the fault at this point.
    pub async fn wait_path_recreated(&self, path: &str) {
        self.wait_for(
            "the path re-created by the daemon",
            Duration::from_secs(30),
            || async {
                let st = self.sim_state().await?;
                let p = &st["paths"][path];
                (p.is_object() && p["parts_written"] == 0).then_some(())
            },
        )
        .await
    }

    /// A call to the stand-in's control endpoint.
    pub async fn sim(&self, method: &str, path: &str) -> Value {
        let url = format!("http://{}{path}", self.control);
        let req = match method {
            "GET" => self.http.get(url),
            "PUT" => self.http.put(url),
            _ => self.http.post(url),
        };
        match req.send().await {
            Ok(r) => r.json().await.unwrap_or(Value::Null),
            Err(_) => Value::Null,
        }
    }

    /// Clears the stand-in's API hang, retrying until a stand-in answers
    /// with the hang cleared. Right after a restart the new process may not
    /// listen on its control port yet: a single request would be refused,
    /// the hang (persisted across restarts) would stay, and every new
    /// process would be judged hung again (a restart storm of the test's
    /// own making).
    pub async fn unhang(&self) {
        self.wait_for(
            "the stand-in's API hang cleared",
            Duration::from_secs(30),
            || async { (self.sim("POST", "/api/unhang").await["api_hung"] == false).then_some(()) },
        )
        .await
    }

    pub async fn sim_state(&self) -> Option<Value> {
        self.get_json(self.control, "/state").await
    }

    /// Alerts stored by the daemon, newest first.
    pub async fn alerts(&self) -> Vec<Value> {
        self.get("/api/alerts?limit=1000")
            .await
            .and_then(|v| v["alerts"].as_array().cloned())
            .unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.lock().unwrap().as_ref().unwrap().id()
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid() as i32), sig).unwrap();
    }

    /// SIGTERM and wait (up to `timeout`) for the exit.
    pub fn stop(&self, timeout: Duration) -> ExitStatus {
        self.signal(nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + timeout;
        loop {
            let status = self.exit_status();
            if let Some(st) = status {
                return st;
            }
            if Instant::now() > deadline {
                let _ = self.child.lock().unwrap().as_mut().unwrap().kill();
                panic!(
                    "the daemon did not stop within {timeout:?}\n{}",
                    tail(&self.logs(), 40)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The stand-in's HLS listener.
    pub fn hls(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.ports.hls))
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // A failing test removes its directory: keep the daemon's whole log
        // (the panic shows only its tail), as a long soak's only evidence.
        if std::thread::panicking() {
            let name = self
                .dir
                .path()
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            let kept = std::env::temp_dir().join(format!("vms-it-{name}.log"));
            if std::fs::write(&kept, self.logs()).is_ok() {
                eprintln!("the daemon's whole log: {}", kept.display());
            }
        }
        if let Some(child) = self.child.get_mut().unwrap().as_mut() {
            if child.try_wait().ok().flatten().is_none() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(child.id() as i32),
                    nix::sys::signal::Signal::SIGTERM,
                );
                let deadline = Instant::now() + Duration::from_secs(10);
                while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(20));
                }
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        // MediaMTX outlives a killed daemon (it is adopted by the next one):
        // a test that ends with the daemon killed leaves it to us.
        if let Some(pid) = self.mediamtx_left() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        if self.tmpfs {
            let _ = Command::new("umount")
                .arg("-l")
                .arg(self.dir.path().join("disk"))
                .status();
        }
    }
}

impl Daemon {
    /// The pid in the state directory's pid file when it is a live stand-in
    /// started on this test's config.
    pub fn mediamtx_left(&self) -> Option<u32> {
        let pid: u32 = std::fs::read_to_string(self.path("state/mediamtx.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let dir = self.dir.path().as_os_str().as_encoded_bytes();
        let ours = cmdline.windows(dir.len()).any(|w| w == dir);
        (ours && alive(pid)).then_some(pid)
    }
}

pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Is a process alive?
pub fn alive(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // A zombie (state Z) is dead for our purposes.
    !stat.is_empty() && !stat.split(") ").nth(1).is_some_and(|s| s.starts_with('Z'))
}

/// The `mvhd` duration of an MP4 file (0 while MediaMTX is still writing it).
pub fn mvhd_duration(file: &Path) -> u64 {
    let data = std::fs::read(file).unwrap();
    let pos = data
        .windows(4)
        .position(|w| w == b"mvhd")
        .unwrap_or_else(|| panic!("{}: no mvhd box", file.display()));
    let version = data[pos + 4];
    if version == 1 {
        u64::from_be_bytes(
            data[pos + 8 + 16 + 4..pos + 8 + 16 + 12]
                .try_into()
                .unwrap(),
        )
    } else {
        u64::from(u32::from_be_bytes(
            data[pos + 8 + 8 + 4..pos + 8 + 8 + 8].try_into().unwrap(),
        ))
    }
}

pub fn camera(status: &Value, id: u32) -> &Value {
    status["cameras"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("camera {id} not in {status}"))
}

/// `rm -rf` of a tree that is being written to: MediaMTX can create a
/// file or directory in it between `remove_dir_all`'s listing and its
/// `rmdir` ("Directory not empty"); an operator would run it again, and so
/// does this, until the tree is gone.
pub fn remove_tree_being_written(path: &Path) {
    for _ in 0..20 {
        match std::fs::remove_dir_all(path) {
            Ok(()) => return,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) if e.kind() == std::io::ErrorKind::DirectoryNotEmpty => continue,
            Err(e) => panic!("removing {}: {e}", path.display()),
        }
    }
    panic!("{} kept being refilled as it was removed", path.display());
}

/// MediaMTX's pid in a `/api/status` document.
pub fn mediamtx_pid(status: &Value) -> Option<u32> {
    status["mediamtx"]["pid"].as_u64().map(|p| p as u32)
}
