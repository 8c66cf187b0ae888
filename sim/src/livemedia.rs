//! Each camera's own live picture. The committed live fixture shows the wall clock but
//! no camera; a camera gets its own copy with its path name burned in at the top left
//! and a 16-bit code ([`code_of`]) as sixteen squares, rendered by the fixture's own
//! script (`fixtures/make-live-fixture.sh LABEL CODE OUTPUT`, with Debian's ffmpeg) in
//! the background, one render at a time at a low CPU priority (nice 10: it yields to the
//! tests, yet still gets a share of a busy machine, which nice 19 hardly does), and kept
//! in a cache directory so that a name is rendered once per machine. Until a camera's render is
//! ready (or when ffmpeg or the fonts are missing, or the name has characters the
//! script's text filter cannot take) the camera plays the shared fixture: no name, code
//! 0. A render has the shared fixture's parameter sets and GOPs (checked when it is
//! loaded), so WebRTC, HLS and the recorder can switch to it at any keyframe.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use crate::log::debug;
use crate::mp4::Fixture;

/// The script that renders the live fixture (the same file as the committed one's).
const SCRIPT: &str = include_str!("../fixtures/make-live-fixture.sh");
/// Paths rendered as soon as they are ready; later ones are rendered when first
/// watched (a test with 300 cameras does not queue 300 renders).
const EAGER_RENDERS: usize = 32;
/// Leftovers of a render interrupted by a kill are removed after this long.
const STALE_TMP: Duration = Duration::from_secs(600);

/// A fixture and its access units in Annex-B form (what WebRTC sends), converted once.
pub struct Media {
    pub fx: Arc<Fixture>,
    pub units: Vec<Arc<[u8]>>,
    /// The code burned into the picture (0: the shared fixture, no camera).
    pub code: u16,
}

impl Media {
    fn new(fx: Arc<Fixture>, code: u16) -> Media {
        let units = fx.samples.iter().map(|s| fx.annexb(s).into()).collect();
        Media { fx, units, code }
    }
}

enum Slot {
    Queued,
    Ready(Arc<Media>),
    Unavailable,
}

pub struct LiveMedia {
    shared: Arc<Media>,
    cams: Mutex<HashMap<String, Slot>>,
    renders: Mutex<Option<mpsc::Sender<String>>>,
    cache: Option<PathBuf>,
}

/// The code of camera `name`: FNV-1a (32 bits) of the name, folded to 16 bits, never 0.
pub fn code_of(name: &str) -> u16 {
    let mut h: u32 = 0x811c_9dc5;
    for b in name.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    match ((h >> 16) ^ (h & 0xffff)) as u16 {
        0 => 1,
        c => c,
    }
}

/// The cache directory: `MTXSIM_CACHE_DIR`, else `$XDG_CACHE_HOME/mediamtx-sim`, else
/// `$HOME/.cache/mediamtx-sim`, else one in the temporary directory.
fn cache_dir() -> Option<PathBuf> {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let candidates = [
        env("MTXSIM_CACHE_DIR"),
        env("XDG_CACHE_HOME").map(|d| d.join("mediamtx-sim")),
        env("HOME").map(|d| d.join(".cache/mediamtx-sim")),
        Some(std::env::temp_dir().join("mediamtx-sim-cache")),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|d| std::fs::create_dir_all(d).is_ok())
}

/// The cached render of `name`: named by a hash of the script and the name, so that a
/// changed script renders again.
fn cache_file(dir: &Path, name: &str) -> PathBuf {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in SCRIPT.bytes().chain([0]).chain(name.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    dir.join(format!("live-{h:016x}.mp4"))
}

/// Whether the script's text filter can take `name` as it is.
fn labelable(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 40
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-./~".contains(&b))
}

impl LiveMedia {
    pub fn new(shared: Arc<Fixture>) -> LiveMedia {
        LiveMedia {
            shared: Arc::new(Media::new(shared, 0)),
            cams: Mutex::new(HashMap::new()),
            renders: Mutex::new(None),
            cache: cache_dir(),
        }
    }

    /// The shared fixture (its shape is every camera's).
    pub fn shared(&self) -> &Arc<Fixture> {
        &self.shared.fx
    }

    /// What camera `name` plays now: its own picture if rendered, else the shared one
    /// (and its render is queued).
    pub fn for_path(self: &Arc<Self>, name: &str) -> Arc<Media> {
        self.queue(name, true);
        match self.cams.lock().unwrap().get(name) {
            Some(Slot::Ready(m)) => m.clone(),
            _ => self.shared.clone(),
        }
    }

    /// A path became ready: its picture is rendered ahead of its first viewer, for the
    /// first [`EAGER_RENDERS`] paths.
    pub fn prepare(self: &Arc<Self>, name: &str) {
        self.queue(name, false);
    }

    /// The code camera `name` shows now, and whether its own picture is ready.
    pub fn state(&self, name: &str) -> (u16, bool) {
        match self.cams.lock().unwrap().get(name) {
            Some(Slot::Ready(m)) => (m.code, true),
            _ => (0, false),
        }
    }

    fn queue(self: &Arc<Self>, name: &str, watched: bool) {
        let mut cams = self.cams.lock().unwrap();
        if cams.contains_key(name) || (!watched && cams.len() >= EAGER_RENDERS) {
            return;
        }
        let Some(dir) = self.cache.clone().filter(|_| labelable(name)) else {
            cams.insert(name.to_string(), Slot::Unavailable);
            return;
        };
        cams.insert(name.to_string(), Slot::Queued);
        drop(cams);
        let mut renders = self.renders.lock().unwrap();
        let tx = renders.get_or_insert_with(|| {
            let (tx, rx) = mpsc::channel::<String>();
            let me = Arc::downgrade(self);
            std::thread::spawn(move || {
                remove_stale(&dir);
                for name in rx {
                    let Some(me) = me.upgrade() else { return };
                    let slot = match render(&dir, &name).and_then(|fx| me.fits(fx)) {
                        Ok(fx) => Slot::Ready(Arc::new(Media::new(Arc::new(fx), code_of(&name)))),
                        Err(e) => {
                            debug!("[mediamtx-sim] no picture of its own for {name}: {e}");
                            Slot::Unavailable
                        }
                    };
                    me.cams.lock().unwrap().insert(name, slot);
                }
            });
            tx
        });
        let _ = tx.send(name.to_string());
    }

    /// `fx` if it can stand in for the shared fixture frame for frame.
    fn fits(&self, fx: Fixture) -> Result<Fixture, String> {
        let s = &self.shared.fx;
        let same = fx.timescale == s.timescale
            && fx.loop_duration == s.loop_duration
            && fx.param_sets == s.param_sets
            && fx.samples.len() == s.samples.len()
            && fx
                .samples
                .iter()
                .zip(&s.samples)
                .all(|(a, b)| a.key == b.key && a.dts == b.dts && a.duration == b.duration);
        same.then_some(fx)
            .ok_or_else(|| "the render differs from the shared fixture in shape".into())
    }
}

/// The render of `name`, from the cache or made now.
fn render(dir: &Path, name: &str) -> Result<Fixture, String> {
    let file = cache_file(dir, name);
    if let Ok(bytes) = std::fs::read(&file) {
        if let Ok(fx) = Fixture::parse(&bytes) {
            return Ok(fx);
        }
    }
    let tmp = file.with_extension(format!("tmp{}.mp4", std::process::id()));
    let out = std::process::Command::new("nice")
        .args(["-n", "10", "sh", "-c", SCRIPT, "make-live-fixture.sh", name])
        .arg(code_of(name).to_string())
        .arg(&tmp)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cannot run the fixture script: {e}"))?;
    if !out.status.success() {
        let _ = std::fs::remove_file(&tmp);
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
    std::fs::rename(&tmp, &file).map_err(|e| e.to_string())?;
    let bytes = std::fs::read(&file).map_err(|e| e.to_string())?;
    Fixture::parse(&bytes)
}

/// Removes renders left half-written by a killed sim.
fn remove_stale(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let stale = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > STALE_TMP);
        if stale && e.file_name().to_string_lossy().contains(".tmp") {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_never_zero() {
        let codes: std::collections::HashSet<u16> =
            (1..=300).map(|i| code_of(&format!("cam_{i}"))).collect();
        assert_eq!(codes.len(), 300, "300 cameras, 300 codes");
        assert!(!codes.contains(&0));
    }

    #[test]
    fn only_names_the_text_filter_takes_are_labelled() {
        assert!(labelable("cam_7") && labelable("site-2/cam.1~a"));
        assert!(!labelable("cam'7") && !labelable("a:b") && !labelable("%{pts}"));
        assert!(!labelable(""));
    }
}
