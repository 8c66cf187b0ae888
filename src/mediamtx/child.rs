//! The MediaMTX process: spawn, signal, measure, watch, and find again
//! after a restart of the daemon.
//!
//! MediaMTX's life does not hang on the daemon's: it runs in its own session
//! (no terminal hangup, no Ctrl-C of the daemon's terminal reaches it), has
//! no parent-death signal, and writes its log lines into a FIFO in the state
//! directory that it also holds open for reading itself, so a write never
//! meets a pipe without readers (Go ends a program on SIGPIPE for its stdout
//! and stderr) while no daemon is listening. A daemon that starts again finds
//! it through the pid file and adopts it ([`find_running`]); the log lines
//! written meanwhile wait in the pipe (1 MiB) and are read by the new daemon.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

/// Starts MediaMTX as `binary config_path`, exactly as an operator would,
/// in a session of its own, with `TZ` set so its file names use the box's
/// time zone, and stdout/stderr into the log FIFO of `state_dir`
/// ([`log_fifo`]), which the caller then reads with [`open_logs`].
pub fn spawn(
    binary: &Path,
    config_path: &Path,
    state_dir: &Path,
    tz: &str,
) -> std::io::Result<Child> {
    let fifo = log_fifo(state_dir);
    ensure_fifo(&fifo)?;
    // Read and write: MediaMTX itself keeps the FIFO open for reading, so a
    // log line written while no daemon reads waits in the pipe instead of
    // killing MediaMTX with SIGPIPE.
    let out = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&fifo)?;
    // Room for the lines of a daemon restart (best effort: the default is
    // 64 KiB; 1 MiB is the unprivileged maximum).
    let _ = nix::fcntl::fcntl(
        std::os::fd::AsRawFd::as_raw_fd(&out),
        nix::fcntl::FcntlArg::F_SETPIPE_SZ(1 << 20),
    );
    let mut cmd = Command::new(binary);
    cmd.arg(config_path)
        .current_dir(state_dir)
        .env("TZ", tz)
        // systemd's sockets are the daemon's, not MediaMTX's.
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID")
        .stdin(Stdio::null())
        .stdout(Stdio::from(out.try_clone()?))
        .stderr(Stdio::from(out));
    // SAFETY: setsid is async-signal-safe and touches only the child.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn()
}

/// The FIFO MediaMTX writes its stdout and stderr into.
pub fn log_fifo(state_dir: &Path) -> PathBuf {
    state_dir.join("mediamtx.out")
}

fn ensure_fifo(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_fifo() => return Ok(()),
        Ok(_) => std::fs::remove_file(path)?,
        Err(_) => {}
    }
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600))
        .map_err(std::io::Error::from)
}

/// The reading end of the log FIFO of a running MediaMTX (our child or an
/// adopted one). It ends when every MediaMTX holding the FIFO has exited.
pub fn open_logs(state_dir: &Path) -> std::io::Result<tokio::net::unix::pipe::Receiver> {
    tokio::net::unix::pipe::OpenOptions::new().open_receiver(log_fifo(state_dir))
}

/// Resolves when process `pid` has exited, whoever its parent is (a pidfd:
/// readable once the process is gone). Errors when the process is already
/// gone or pidfds are not available (Linux before 5.3).
pub fn exit_watch(
    pid: u32,
) -> std::io::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    use std::os::fd::{FromRawFd, OwnedFd};
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the descriptor was just returned to us and is owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    // SAFETY: the AsyncFd owns the descriptor; nothing else can close it
    // while it is registered.
    let fd = unsafe { tokio::io::unix::AsyncFd::register(fd) }.map_err(std::io::Error::from)?;
    Ok(async move {
        let _ = fd.readable().await;
    })
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

/// What the pid file of the state directory leads to when the daemon starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// No pid file, or its process is gone.
    Nothing,
    /// The pid now belongs to some other process (`what`): it is neither
    /// adopted nor signalled.
    Stranger { pid: u32, what: String },
    /// Our MediaMTX (started with our config file) that can be adopted: same
    /// executable as the configured binary, unchanged on disk.
    Adoptable { pid: u32 },
    /// Our MediaMTX, running the configured binary's earlier file: a new
    /// MediaMTX was installed at that path since it started. It is adopted
    /// (it keeps recording) and then restarted once, deliberately, to run
    /// the new binary (the upgrade path of the process machine).
    Outdated { pid: u32 },
    /// Our MediaMTX, but adopting it is not safe (`why`): it must be stopped
    /// and a new one started.
    Unsafe { pid: u32, why: String },
    /// A process with that pid runs but its `/proc` entry cannot be read
    /// (it is hidden from this daemon: another user, or another user
    /// namespace under `ProtectProc=invisible`): it cannot be told apart
    /// from a stranger, so it is neither adopted nor signalled.
    Hidden { pid: u32 },
}

/// Looks for the MediaMTX a previous daemon left running: the pid file, then
/// `/proc/PID`: started with `config_path` as its argument (otherwise the pid
/// was reused by another process), running `binary` (the same file, not a
/// file since replaced on disk by an upgrade). Whether its API answers is
/// the process machine's first probe.
pub fn find_running(state_dir: &Path, binary: &Path, config_path: &Path) -> Found {
    let Some(pid) = std::fs::read_to_string(pid_file(state_dir))
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .filter(|p| *p > 1)
    else {
        return Found::Nothing;
    };
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        // Gone, or only hidden: signal 0 tells (EPERM still means it exists).
        return match kill(Pid::from_raw(pid as i32), None) {
            Err(nix::errno::Errno::ESRCH) => Found::Nothing,
            _ => Found::Hidden { pid },
        };
    };
    if is_zombie(pid) {
        return Found::Nothing;
    }
    let args: Vec<&[u8]> = cmdline
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .collect();
    let ours = args.len() == 2 && args[1] == config_path.as_os_str().as_encoded_bytes();
    if !ours {
        let what = String::from_utf8_lossy(&args.join(&b' ')).into_owned();
        return Found::Stranger { pid, what };
    }
    let running = std::fs::metadata(format!("/proc/{pid}/exe"));
    let on_disk = std::fs::metadata(binary);
    let exe = std::fs::read_link(format!("/proc/{pid}/exe"))
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "?".into());
    use std::os::unix::fs::MetadataExt;
    match (running, on_disk) {
        (Ok(r), Ok(d)) if r.dev() == d.dev() && r.ino() == d.ino() => Found::Adoptable { pid },
        (Ok(_), Ok(_)) if same_path(exe.strip_suffix(" (deleted)").unwrap_or(&exe), binary) => {
            Found::Outdated { pid }
        }
        (Ok(_), _) => Found::Unsafe {
            pid,
            why: format!("it runs {exe}, not the configured {}", binary.display()),
        },
        (Err(e), _) => Found::Unsafe {
            pid,
            why: format!("its executable cannot be checked: {e}"),
        },
    }
}

/// Whether `exe` (a resolved path, from `/proc/PID/exe`) is the configured
/// `binary`'s path, which may be a symbolic link.
fn same_path(exe: &str, binary: &Path) -> bool {
    Path::new(exe) == binary || std::fs::canonicalize(binary).is_ok_and(|b| b == Path::new(exe))
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('Z'))
        })
        .unwrap_or(true)
}

/// Stops a MediaMTX of ours that cannot be adopted (it would hold the
/// ports): SIGTERM, then SIGKILL to its group after `stop_timeout`.
pub async fn stop_unadoptable(pid: u32, stop_timeout: Duration) {
    terminate(pid);
    let deadline = tokio::time::Instant::now() + stop_timeout;
    while tokio::time::Instant::now() < deadline {
        if !Path::new(&format!("/proc/{pid}")).exists() || is_zombie(pid) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    kill_group(pid);
}

/// Whether the configured binary on disk is no longer the file process
/// `pid` runs (an upgrade of MediaMTX). `false` when either cannot be read.
pub fn binary_replaced(pid: u32, binary: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (
        std::fs::metadata(format!("/proc/{pid}/exe")),
        std::fs::metadata(binary),
    ) {
        (Ok(r), Ok(d)) => r.dev() != d.dev() || r.ino() != d.ino(),
        _ => false,
    }
}

/// The marker `ExecStop=` of the systemd unit leaves when the unit is being
/// stopped for good (not restarted): the daemon then stops MediaMTX too.
pub fn stop_marker(state_dir: &Path) -> PathBuf {
    state_dir.join("mediamtx.stop")
}
