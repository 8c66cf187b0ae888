//! The repository and the built binary: paths, fixtures, running the CLI.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `tests/fixtures/mediamtx/<name>`: the project's extracts of MediaMTX
/// v1.20.1 facts (see `tests/fixtures/README.md`).
pub fn mediamtx_reference(name: &str) -> PathBuf {
    let path = repo().join("tests/fixtures/mediamtx").join(name);
    assert!(path.is_file(), "{} is missing", path.display());
    path
}

/// Runs the built `vms-supervisor` with `args`, no inherited secrets.
pub fn vms(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vms-supervisor"))
        .args(args)
        .env_remove("VMS_TELEGRAM_BOT_TOKEN")
        .env_remove("VMS_SMTP_PASSWORD")
        .output()
        .expect("running vms-supervisor")
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Sorted list of `*.toml` files in a directory.
pub fn toml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}
