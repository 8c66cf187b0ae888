//! Injected faults: what tests can break, persisted to `MTXSIM_FAULTS` so they survive a
//! restart of the sim by the daemon.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Mutex;

/// How a camera is down.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CameraMode {
    /// The camera stops sending; detected after `readTimeout` (`TCP timeout`).
    Silent,
    /// The connection is closed; detected at once (`EOF`).
    Closed,
}

/// What `POST /NAME/whep` does on a ready path.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhepMode {
    /// A real WebRTC session that plays the live stream.
    #[default]
    Default,
    /// 500 JSON error.
    Fail,
    /// Never answers.
    Hang,
    /// 404 `no stream is available`, as for a path that is not ready.
    NotFound,
    /// 201 with an answer whose only candidate is a closed port: ICE never connects.
    NoIce,
    /// ICE and DTLS connect, no frame is ever sent (a black video).
    NoMedia,
    /// 400 `the sim has no WebRTC stack` (the sim's answer before it had one).
    NoStack,
}

/// The whole fault document (`GET/PUT /faults`, and the `MTXSIM_FAULTS` file).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Abort (SIGABRT) right after startup.
    pub crash_at_start: bool,
    /// Cameras that are down, by path name (`*`: every other path). Absent = up.
    pub cameras: BTreeMap<String, CameraMode>,
    /// Paths whose recorder writes nothing while the path stays ready.
    pub recorder_stalled: BTreeSet<String>,
    /// Paths whose `inboundBytes` stops growing while ready.
    pub bytes_frozen: BTreeSet<String>,
    /// The control API (apiAddress) accepts connections and never answers.
    pub api_hung: bool,
    /// Every API answer is delayed by this many milliseconds (0: none).
    pub api_delay_ms: u64,
    /// The next file-triggered reload makes the process exit 0 (as an invalid reload).
    pub reload_fatal: bool,
    pub whep: WhepMode,
    /// Live streams (WebRTC sessions, HLS muxers) freeze this many seconds after their
    /// first frame / creation (0: never).
    pub stream_freeze_after_secs: u64,
    /// Memory growth rate; the memory really allocated is not persisted.
    pub memory_grow_mib_per_sec: u64,
}

impl Faults {
    /// The camera fault of a path; the key `*` applies to every path without its own.
    pub fn camera(&self, path: &str) -> Option<CameraMode> {
        self.cameras
            .get(path)
            .or_else(|| self.cameras.get("*"))
            .copied()
    }
}

pub struct FaultStore {
    faults: Mutex<Faults>,
    file: Option<PathBuf>,
}

impl FaultStore {
    /// Reads the file named by `MTXSIM_FAULTS` (a missing file means no faults).
    pub fn from_env() -> Result<FaultStore, String> {
        let file = std::env::var_os("MTXSIM_FAULTS").map(PathBuf::from);
        let faults = match &file {
            Some(f) => match std::fs::read(f) {
                Ok(b) if b.iter().all(u8::is_ascii_whitespace) => Faults::default(),
                Ok(b) => serde_json::from_slice(&b)
                    .map_err(|e| format!("MTXSIM_FAULTS {}: {e}", f.display()))?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Faults::default(),
                Err(e) => return Err(format!("MTXSIM_FAULTS {}: {e}", f.display())),
            },
            None => Faults::default(),
        };
        Ok(FaultStore {
            faults: Mutex::new(faults),
            file,
        })
    }

    pub fn get(&self) -> Faults {
        self.faults.lock().unwrap().clone()
    }

    /// Changes the faults and persists them (write to a temp file, then rename).
    pub fn update<R>(&self, f: impl FnOnce(&mut Faults) -> R) -> R {
        let mut g = self.faults.lock().unwrap();
        let r = f(&mut g);
        if let Some(file) = &self.file {
            let tmp = file.with_extension("tmp-mtxsim");
            let body = serde_json::to_vec_pretty(&*g).unwrap();
            if std::fs::write(&tmp, body).is_ok() {
                let _ = std::fs::rename(&tmp, file);
            }
        }
        r
    }

    pub fn camera(&self, path: &str) -> Option<CameraMode> {
        self.faults.lock().unwrap().camera(path)
    }

    /// (camera, recorder stalled, bytes frozen) for one path.
    pub fn for_path(&self, path: &str) -> (Option<CameraMode>, bool, bool) {
        let g = self.faults.lock().unwrap();
        (
            g.camera(path),
            g.recorder_stalled.contains(path),
            g.bytes_frozen.contains(path),
        )
    }
}
