//! Files written so that a crash or a full disk never leaves a half-written
//! one behind: a temporary file in the same directory, fsync, rename, fsync
//! of the directory.

use std::io::Write as _;
use std::path::Path;

/// Writes `contents` to `path` atomically: a temporary file in the same
/// directory, fsync, rename over the target, fsync of the directory. MediaMTX
/// watches the directory and reads the file at once, so it must never see a
/// half-written file (docs/mediamtx.md §0.9). The file is private (0600): camera
/// URLs carry passwords.
pub fn write_atomic(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
