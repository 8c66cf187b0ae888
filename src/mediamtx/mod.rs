//! Everything about the MediaMTX we own: its generated config file
//! ([`render`]), its control API ([`api`]), its process ([`child`]) and its
//! log lines ([`logs`]).

pub mod api;
pub mod child;
pub mod logs;
pub mod render;

use std::path::{Path, PathBuf};

/// The credential this daemon presents to its MediaMTX (`Authorization:
/// Bearer <credential>` on every API and playback request): a random value
/// made once per daemon process, never written in `mediamtx.yml`. With
/// `authMethod: http` MediaMTX asks the daemon about every API call, and the
/// daemon allows `api` only for this credential, so other processes on the
/// box cannot drive MediaMTX through its loopback API (docs/mediamtx.md
/// §b2: an `authHTTPExclude` of `api` would open it to all of them).
/// Empty only if the kernel gave no random bytes; then nothing matches it.
pub fn credential() -> &'static str {
    static CREDENTIAL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    CREDENTIAL.get_or_init(|| crate::token::random().unwrap_or_default())
}

/// The file in the state directory that holds [`credential`] (mode 0600),
/// for the box's administrator and tools that query MediaMTX's API by hand.
pub const CREDENTIAL_FILE: &str = "mediamtx-credential";

/// Resolves `[mediamtx] binary`: a path with a `/` is used as is; a bare name
/// is looked up beside the running executable (the demo's `mediamtx-sim`),
/// then in `PATH`.
pub fn resolve_binary(binary: &Path) -> Option<PathBuf> {
    if binary.components().count() > 1 || binary.is_absolute() {
        return binary.is_file().then(|| binary.to_path_buf());
    }
    let beside_exe = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join(binary)));
    let in_path = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(binary))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    beside_exe.into_iter().chain(in_path).find(|p| p.is_file())
}

/// What an operator reads when the MediaMTX binary is missing.
pub fn missing_binary_help(binary: &Path) -> String {
    format!(
        "MediaMTX executable {} not found. vms-supervisor does not ship MediaMTX: download the \
         release tarball for your architecture (mediamtx_v1.20.1_linux_amd64.tar.gz) from the \
         MediaMTX releases page, then `tar -xzf mediamtx_*.tar.gz mediamtx && install -m 0755 \
         mediamtx /usr/local/bin/mediamtx`, or set [mediamtx] binary in /etc/vms/vms.toml",
        binary.display()
    )
}
