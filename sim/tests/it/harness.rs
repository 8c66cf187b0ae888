//! Starts the built `mediamtx-sim` in a temp dir with every listener on port 0, and talks
//! to it with a tiny blocking HTTP client (so the tests need no async runtime).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_mediamtx-sim");

/// Global keys putting every listener on a free loopback port, API/metrics/playback on.
pub const LISTENERS: &str = "\
api: yes
apiAddress: 127.0.0.1:0
metrics: yes
metricsAddress: 127.0.0.1:0
playback: yes
playbackAddress: 127.0.0.1:0
rtspAddress: 127.0.0.1:0
hlsAddress: 127.0.0.1:0
webrtcAddress: 127.0.0.1:0
";

pub struct Sim {
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub conf: PathBuf,
    pub ctl: String,
    out: Arc<Mutex<String>>,
    status: Option<ExitStatus>,
}

pub struct Resp {
    pub status: u16,
    /// The last value of each header, by lower-case name.
    pub headers: BTreeMap<String, String>,
    /// Every header line in order, names in lower case (repeated headers such as
    /// `Link` keep each value).
    pub all_headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    /// Every value of header `name` (lower case), in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.all_headers
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// One HTTP/1.1 request with `Connection: close`. None on timeout or connection error.
pub fn http_try(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
    timeout: Duration,
) -> Option<Resp> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    let body = body.unwrap_or(b"");
    if !body.is_empty() || method != "GET" {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).ok()?;
    s.write_all(body).ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status: u16 = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let all_headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let hs: BTreeMap<String, String> = all_headers.iter().cloned().collect();
    let mut body = raw[split + 4..].to_vec();
    if hs.get("transfer-encoding").map(String::as_str) == Some("chunked") {
        body = dechunk(&body);
    }
    Some(Resp {
        status,
        headers: hs,
        all_headers,
        body,
    })
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(i) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let n = usize::from_str_radix(std::str::from_utf8(&b[..i]).unwrap_or("0").trim(), 16)
            .unwrap_or(0);
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&b[i + 2..i + 2 + n]);
        b = &b[i + 2 + n + 2..];
    }
}

pub fn http(addr: &str, method: &str, path: &str, body: Option<&str>) -> Resp {
    http_try(
        addr,
        method,
        path,
        &[("Content-Type", "application/json")],
        body.map(str::as_bytes),
        Duration::from_secs(15),
    )
    .unwrap_or_else(|| panic!("{method} {addr}{path}: no answer"))
}

/// Polls `f` until it returns true, or panics after `timeout` with `what`.
pub fn wait_until(timeout: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out after {timeout:?} waiting for: {what}");
}

pub struct Opts<'a> {
    pub faults: Option<&'a str>,
    pub env: Vec<(&'a str, &'a str)>,
    /// Wait until the control listener answers (false for configs that fail at start).
    pub wait_ready: bool,
}

impl Default for Opts<'_> {
    fn default() -> Self {
        Opts {
            faults: None,
            env: vec![],
            wait_ready: true,
        }
    }
}

impl Sim {
    pub fn start(yaml: &str) -> Sim {
        Sim::start_opts(yaml, Opts::default())
    }

    pub fn start_opts(yaml: &str, o: Opts) -> Sim {
        let dir = tempfile::tempdir().unwrap();
        Sim::start_in(dir, yaml, o)
    }

    pub fn start_in(dir: tempfile::TempDir, yaml: &str, o: Opts) -> Sim {
        let conf = dir.path().join("mediamtx.yml");
        std::fs::write(&conf, yaml).unwrap();
        let faults = dir.path().join("faults.json");
        if let Some(f) = o.faults {
            std::fs::write(&faults, f).unwrap();
        }
        let mut cmd = Command::new(BIN);
        cmd.arg(&conf)
            .current_dir(dir.path())
            .env("MTXSIM_CONTROL", "127.0.0.1:0")
            .env("MTXSIM_FAULTS", &faults)
            // The cameras' rendered pictures, shared by the tests (not in $HOME).
            .env("MTXSIM_CACHE_DIR", PICTURE_CACHE)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in &o.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let out = Arc::new(Mutex::new(String::new()));
        let stdout = child.stdout.take().unwrap();
        let o2 = out.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(l) = line else { return };
                let mut g = o2.lock().unwrap();
                g.push_str(&l);
                g.push('\n');
            }
        });
        let mut sim = Sim {
            child,
            dir,
            conf,
            ctl: String::new(),
            out,
            status: None,
        };
        if o.wait_ready {
            wait_until(Duration::from_secs(10), "control listener", || {
                if let Ok(Some(st)) = sim.child.try_wait() {
                    std::thread::sleep(Duration::from_millis(100));
                    panic!("the sim exited at startup ({st}):\n{}", sim.log());
                }
                sim.ctl = sim
                    .log()
                    .lines()
                    .find_map(|l| l.split("control listener on ").nth(1))
                    .unwrap_or("")
                    .to_string();
                !sim.ctl.is_empty()
            });
            wait_until(Duration::from_secs(10), "startup complete", || {
                if let Ok(Some(st)) = sim.child.try_wait() {
                    std::thread::sleep(Duration::from_millis(100));
                    panic!("the sim exited at startup ({st}):\n{}", sim.log());
                }
                http_try(&sim.ctl, "GET", "/state", &[], None, Duration::from_secs(5))
                    .is_some_and(|r| r.json()["started"] == true)
            });
        }
        sim
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn log(&self) -> String {
        self.out.lock().unwrap().clone()
    }

    pub fn wait_log(&self, needle: &str, timeout: Duration) {
        wait_until(timeout, &format!("log line {needle:?}"), || {
            self.log().contains(needle)
        });
    }

    pub fn state(&self) -> serde_json::Value {
        http(&self.ctl, "GET", "/state", None).json()
    }

    /// Bound address of a server (`api`, `metrics`, `playback`, `hls`, `webrtc`, `rtsp`).
    pub fn addr(&self, server: &str) -> String {
        self.state()["listeners"][server]
            .as_str()
            .unwrap_or_else(|| panic!("{server} is not listening"))
            .to_string()
    }

    pub fn api(&self, method: &str, path: &str, body: Option<&str>) -> Resp {
        http(&self.addr("api"), method, path, body)
    }

    pub fn ctl(&self, method: &str, path: &str) -> serde_json::Value {
        let r = http(&self.ctl, method, path, None);
        assert_eq!(r.status, 200, "{method} {path}: {}", r.text());
        r.json()
    }

    pub fn path_state(&self, name: &str) -> serde_json::Value {
        self.state()["paths"][name].clone()
    }

    pub fn wait_ready(&self, name: &str, ready: bool, timeout: Duration) {
        wait_until(timeout, &format!("{name} ready={ready}"), || {
            self.path_state(name)["ready"] == ready
        });
    }

    /// Atomically replaces the config file (write temp, rename).
    pub fn write_conf(&self, yaml: &str) {
        let tmp = self.path().join("mediamtx.yml.tmp");
        std::fs::write(&tmp, yaml).unwrap();
        std::fs::rename(&tmp, &self.conf).unwrap();
    }

    pub fn signal(&self, sig: i32) {
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    /// Waits for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        if let Some(s) = self.status {
            return s;
        }
        let end = Instant::now() + timeout;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                self.status = Some(s);
                return s;
            }
            assert!(
                Instant::now() < end,
                "the sim did not exit within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

pub const SIGHUP: i32 = 1;
pub const SIGINT: i32 = 2;
pub const SIGKILL: i32 = 9;
pub const SIGTERM: i32 = 15;

impl Drop for Sim {
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Recursively lists regular files under `dir`, sorted.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    fn walk(d: &Path, out: &mut Vec<PathBuf>) {
        if let Ok(rd) = std::fs::read_dir(d) {
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, out);
                } else {
                    out.push(p);
                }
            }
        }
    }
    walk(dir, &mut out);
    out.sort();
    out
}

/// A minimal MP4 box walker: (type, payload) of the boxes in `data`.
pub fn boxes(data: &[u8]) -> Vec<(String, &[u8])> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + 8 <= data.len() {
        let size = u32::from_be_bytes(data[pos..pos + 4].try_into().unwrap()) as usize;
        let kind = String::from_utf8_lossy(&data[pos + 4..pos + 8]).into_owned();
        assert!(
            size >= 8 && pos + size <= data.len(),
            "bad box {kind} at {pos}"
        );
        out.push((kind, &data[pos + 8..pos + size]));
        pos += size;
    }
    assert_eq!(pos, data.len(), "trailing bytes after the last box");
    out
}

/// Checks a recorded fMP4 file and returns (number of fragments, mvhd duration in s).
pub fn check_fmp4(file: &Path) -> (usize, f64) {
    let data = std::fs::read(file).unwrap();
    let top = boxes(&data);
    let kinds: Vec<&str> = top.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(&kinds[..2], ["ftyp", "moov"], "{}", file.display());
    let frags = &kinds[2..];
    assert!(frags.len() % 2 == 0, "moof/mdat pairs: {kinds:?}");
    for pair in frags.chunks(2) {
        assert_eq!(pair, ["moof", "mdat"]);
    }
    let moov = boxes(top[1].1);
    let mvhd = moov.iter().find(|(k, _)| k == "mvhd").expect("mvhd").1;
    let (ts, dur) = if mvhd[0] == 1 {
        (
            u32::from_be_bytes(mvhd[20..24].try_into().unwrap()),
            u64::from_be_bytes(mvhd[24..32].try_into().unwrap()),
        )
    } else {
        (
            u32::from_be_bytes(mvhd[12..16].try_into().unwrap()),
            u32::from_be_bytes(mvhd[16..20].try_into().unwrap()) as u64,
        )
    };
    assert!(moov.iter().any(|(k, _)| k == "mvex"), "fragmented: mvex");
    // Every moof's tfdt increases.
    let mut last = None;
    for (k, p) in &top {
        if k == "moof" {
            let traf = boxes(p).into_iter().find(|(k, _)| k == "traf").unwrap().1;
            let tfdt = boxes(traf)
                .into_iter()
                .find(|(k, _)| k == "tfdt")
                .unwrap()
                .1;
            let t = u64::from_be_bytes(tfdt[4..12].try_into().unwrap());
            if let Some(l) = last {
                assert!(t > l, "tfdt must increase");
            }
            last = Some(t);
        }
    }
    if let Ok(o) = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name,width,height",
            "-of",
            "csv=p=0",
        ])
        .arg(file)
        .output()
    {
        assert!(o.status.success(), "ffprobe failed on {}", file.display());
        assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "h264,320,180");
    }
    (frags.len() / 2, dur as f64 / ts as f64)
}

/// A browser-like receive-only H.264 offer (no candidates: ICE is not exercised here).
pub const OFFER: &str = include_str!("../../../tests/fixtures/webrtc/offer.sdp");

/// Where the sims of the tests keep the cameras' rendered pictures.
pub const PICTURE_CACHE: &str = concat!(env!("CARGO_TARGET_TMPDIR"), "/mediamtx-sim-cache");

/// The first frame of the video in `file` (anything ffmpeg reads), 640x360 grey.
pub fn first_frame_gray(file: &Path) -> Option<Vec<u8>> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(file)
        .args(["-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "gray", "-"])
        .output()
        .ok()?;
    (out.status.success() && out.stdout.len() == 640 * 360).then_some(out.stdout)
}

/// The number carried by `bits` white squares of a 640x360 grey frame, square k's
/// centre at (`x0` + `step` k, `y`) (sim/README.md, "The live view's media").
fn squares(frame: &[u8], bits: usize, x0: usize, step: usize, y: usize) -> u64 {
    (0..bits).fold(0, |n, k| {
        if frame[y * 640 + x0 + step * k] > 128 {
            n | 1 << k
        } else {
            n
        }
    })
}

/// The frame number burned into a live-fixture frame (ten squares at the bottom).
pub fn frame_number(frame: &[u8]) -> u64 {
    squares(frame, 10, 60, 56, 320)
}

/// The camera code burned into a live-fixture frame (sixteen small squares; 0 on the
/// shared picture).
pub fn picture_code(frame: &[u8]) -> u64 {
    squares(frame, 16, 52, 36, 262)
}

pub fn have_ffmpeg() -> bool {
    Command::new("ffmpeg")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success())
}
