//! The MediaMTX child process: spawn, signal, measure, and clean up after a
//! previous daemon that died without stopping it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

/// Starts MediaMTX as `binary config_path`, exactly as an operator would,
/// in its own process group (so a Ctrl-C on the daemon's terminal does not
/// reach it and the daemon alone decides how it stops), with `TZ` set so its
/// file names use the box's time zone, stdout/stderr piped to the daemon,
/// and SIGTERM as its parent-death signal so a killed daemon never leaves a
/// running MediaMTX behind.
pub fn spawn(
    binary: &Path,
    config_path: &Path,
    workdir: &Path,
    tz: &str,
) -> std::io::Result<Child> {
    let mut cmd = Command::new(binary);
    cmd.arg(config_path)
        .current_dir(workdir)
        .env("TZ", tz)
        // systemd's sockets are the daemon's, not MediaMTX's.
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    // SAFETY: prctl is async-signal-safe and touches only the child.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn()
}

/// SIGTERM: MediaMTX shuts down gracefully and finalizes its segments.
pub fn terminate(pid: u32) {
    let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
}

/// SIGKILL to the whole process group.
pub fn kill_group(pid: u32) {
    let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
}

/// Resident memory of `pid` in bytes, from `/proc/<pid>/status`.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Describes an exit status for logs and incidents.
pub fn describe_exit(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    if let Some(code) = status.code() {
        format!("exit code {code}")
    } else if let Some(sig) = status.signal() {
        let name = Signal::try_from(sig)
            .map(|s| s.as_str().to_string())
            .unwrap_or_else(|_| format!("signal {sig}"));
        format!("killed by {name}")
    } else {
        "unknown exit".into()
    }
}

/// Where the daemon records the pid of the MediaMTX it started.
pub fn pid_file(state_dir: &Path) -> PathBuf {
    state_dir.join("mediamtx.pid")
}

/// A MediaMTX left running by a previous daemon (killed with SIGKILL before
/// the parent-death signal existed, or in another PID namespace) would hold
/// the ports. If the pid file names a live process started with our config
/// file, stop it: SIGTERM, then SIGKILL after `stop_timeout`.
pub async fn stop_leftover(
    state_dir: &Path,
    config_path: &Path,
    stop_timeout: Duration,
) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(pid_file(state_dir))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let ours = cmdline
        .split(|b| *b == 0)
        .any(|arg| arg == config_path.as_os_str().as_encoded_bytes());
    if !ours {
        return None;
    }
    terminate(pid);
    let deadline = tokio::time::Instant::now() + stop_timeout;
    while tokio::time::Instant::now() < deadline {
        if !Path::new(&format!("/proc/{pid}")).exists() {
            return Some(pid);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    kill_group(pid);
    Some(pid)
}
